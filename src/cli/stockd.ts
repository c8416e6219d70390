#!/usr/bin/env node
/**
 * The `stockd` command line. Parsing by commander; each command lives in its own module
 * as it grows (serve, replay, admin arrive with their milestones).
 */
import { Command } from 'commander';

const program = new Command();
program.name('stockd').description('stockd: one true stock count, reservations and ATP for every channel');

program
  .command('serve')
  .description('run the HTTP API and the engine (not available yet: arrives with the HTTP API milestone)')
  .action(() => {
    console.error(
      'stockd serve is not available yet: the HTTP API and the PostgreSQL/PGlite stores are the next milestones.\n' +
        'The engine can be used as a library today; see README.md.',
    );
    process.exitCode = 2;
  });

program
  .command('bench')
  .description('run the engine benchmarks (same as npm run bench)')
  .action(async () => {
    await import('../../bench/run.js');
  });

await program.parseAsync();
