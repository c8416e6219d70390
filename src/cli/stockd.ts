#!/usr/bin/env node
/**
 * The `stockd` command line. Parsing by commander; each command lives in its own module
 * as it grows (serve, replay, admin arrive with their milestones).
 */
import { Command } from 'commander';
import { replayCommand } from './replay.js';
import { serveCommand, serveHelp } from './serve.js';

const program = new Command();
program.name('stockd').description('stockd: one true stock count, reservations and ATP for every channel');

program.addCommand(serveCommand());
program.addHelpText('after', serveHelp);

// The benchmark command and its options live with the benchmarks (bench/run.ts), loaded
// only when `stockd bench` runs: everything after `bench`, --help included, goes there.
program
  .command('bench')
  .description(
    'benchmark stockd against PostgreSQL row update and Redis Lua, then write the report (same as npm run bench; stockd bench --help)',
  )
  .helpOption(false)
  .allowUnknownOption()
  .allowExcessArguments()
  .action(async (_options: unknown, command: Command) => {
    const { runBenchCli } = await import('../../bench/run.js');
    process.exitCode = await runBenchCli(command.args);
  });

program.addCommand(replayCommand());

await program.parseAsync();
