/**
 * Request validation with TypeBox's compiled checkers instead of Ajv, and the mapping of a
 * schema violation to a stable error code.
 *
 * The code comes from the schema itself: a property that maps to a specific rejection
 * carries it as `x-stockd-code` (quantities → INVALID_QUANTITY, TTLs → INVALID_TTL), so
 * the API answers a bad `qty` with the same code whether the schema or the engine caught
 * it. `maxItems` is always a limit (LIMIT_EXCEEDED); anything else is INVALID_REQUEST.
 */
import type { FastifySchemaCompiler } from 'fastify';
import type { TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import { Value } from 'typebox/value';
import type { ErrorCode } from '../errors.js';
import { ProblemError } from './problem.js';

/** Schema annotation: the error code a violation of this node maps to. */
export const codeKeyword = 'x-stockd-code';
/** Schema annotation on a body schema: the body may be absent. */
export const optionalBodyKeyword = 'x-stockd-optional-body';

interface SchemaError {
  readonly keyword: string;
  readonly schemaPath: string;
  readonly instancePath: string;
  readonly message: string;
}

/** Fastify validator compiler: TypeBox JIT checks; query strings are converted first ("5" → 5). */
export const validatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const checker = Compile(schema);
  const convert = httpPart === 'querystring';
  const optional = httpPart === 'body' && (schema as Record<string, unknown>)[optionalBodyKeyword] === true;
  const part = httpPart ?? 'request';
  return (value: unknown) => {
    // Fastify hands an absent body over as null.
    if (optional && (value === null || value === undefined)) return { value: undefined };
    const candidate = convert ? Value.Convert(schema, value) : value;
    if (checker.Check(candidate)) return { value: candidate };
    const first = checker.Errors(candidate)[0] as SchemaError | undefined;
    return { error: violationOf(schema, first, part) };
  };
};

/** Checks a value against a schema outside Fastify's lifecycle (batch commands). */
export function compileCheck(schema: TSchema, part: string): (value: unknown) => ProblemError | null {
  const checker = Compile(schema);
  return (value) => {
    if (checker.Check(value)) return null;
    return violationOf(schema, checker.Errors(value)[0] as SchemaError | undefined, part);
  };
}

export function violationOf(schema: TSchema, error: SchemaError | undefined, part: string): ProblemError {
  if (error === undefined) return new ProblemError('INVALID_REQUEST', `${part} is invalid`);
  const where = `${part}${error.instancePath}`;
  return new ProblemError(codeOf(schema, error), `${where} ${error.message}`);
}

function codeOf(schema: TSchema, error: SchemaError): ErrorCode {
  if (error.keyword === 'maxItems') return 'LIMIT_EXCEEDED';
  // `required` reports the parent object: a missing field is a malformed request.
  if (error.keyword === 'required' || error.keyword === 'additionalProperties') return 'INVALID_REQUEST';
  const node = resolvePointer(schema, error.schemaPath);
  const code = node?.[codeKeyword];
  return typeof code === 'string' ? (code as ErrorCode) : 'INVALID_REQUEST';
}

/** Resolves a JSON pointer such as `#/properties/lines/items/properties/qty` in a schema. */
function resolvePointer(schema: TSchema, pointer: string): Record<string, unknown> | undefined {
  let node: unknown = schema;
  const path = pointer.startsWith('#') ? pointer.slice(1) : pointer;
  for (const raw of path.split('/')) {
    if (raw === '') continue;
    const segment = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[segment];
  }
  return node !== null && typeof node === 'object' ? (node as Record<string, unknown>) : undefined;
}
