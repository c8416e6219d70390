/** stockd as a library: the engine, its stores, and the domain types. */

export type * from './actors/types.js';
export type { Limits } from './config.js';
export { assertLimits, defaultLimits } from './config.js';
export type { Clock } from './engine/clock.js';
export { ManualClock, systemClock } from './engine/clock.js';
export type { EngineOptions, ShardLane } from './engine/engine.js';
export { Engine, mergeReservationReplies, Router } from './engine/engine.js';
export type { GcProfile } from './engine/gc-profile.js';
export { applyGcProfile, gcProfileFlags, gcProfiles } from './engine/gc-profile.js';
export type { ErrorCode, Rejection, Shortage } from './errors.js';
export { errorCodes, errorDefinitions } from './errors.js';
export { MemoryWalStore } from './persistence/memory-store.js';
export type { Layout, SnapshotRow, WalRow, WalStore } from './persistence/wal.js';
