/**
 * `npm run bench`: every engine benchmark, one after another, each printing the machine
 * it ran on. Parameters come from the environment (see each benchmark's header).
 */
import { main as engineThroughput } from './engine-throughput.js';
import { main as memory } from './memory.js';

await memory();
await engineThroughput();
