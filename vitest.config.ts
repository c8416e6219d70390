import { defineConfig } from 'vitest/config';

// Test tiers by file suffix (Emmett style): .unit (pure, fast), .int (real threads or real
// services), .e2e (over HTTP), .sim (deterministic simulation). `vitest run --project unit`
// selects one tier.
export default defineConfig({
  test: {
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/**/*.unit.test.ts'] } },
      { extends: true, test: { name: 'int', include: ['test/**/*.int.test.ts'], testTimeout: 120_000 } },
      { extends: true, test: { name: 'sim', include: ['test/**/*.sim.test.ts'], testTimeout: 300_000 } },
      { extends: true, test: { name: 'e2e', include: ['test/**/*.e2e.test.ts'], testTimeout: 120_000 } },
    ],
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
