import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { errorCodes, errorDefinitions } from '../src/errors.js';

// docs/errors.md and src/errors.ts must list the same codes with the same numbers and statuses.
const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');
const rows = [...doc.matchAll(/^\| (\d+) \| `([A-Z_]+)` \| (\d+) \|/gm)].map((m) => ({
  number: Number(m[1]),
  code: m[2]!,
  status: Number(m[3]),
}));

describe('error codes', () => {
  it('docs/errors.md documents exactly the codes of src/errors.ts', () => {
    expect(rows.map((row) => row.code).sort()).toEqual([...errorCodes].sort());
  });

  it('numbers and HTTP statuses agree between the doc and the code', () => {
    for (const row of rows) {
      const definition = errorDefinitions[row.code as keyof typeof errorDefinitions];
      expect(definition, row.code).toBeDefined();
      expect({ code: row.code, number: row.number, status: row.status }).toEqual({
        code: row.code,
        number: definition.number,
        status: definition.status,
      });
    }
  });

  it('numbers are unique and never reused', () => {
    const numbers = errorCodes.map((code) => errorDefinitions[code].number);
    expect(new Set(numbers).size).toBe(numbers.length);
  });

  it('every status is a client or availability error, never a 500', () => {
    for (const code of errorCodes) {
      const { status } = errorDefinitions[code];
      expect((status >= 400 && status < 500) || status === 503, code).toBe(true);
    }
  });
});
