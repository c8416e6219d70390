/**
 * Garbage-collector settings for a process that answers within milliseconds.
 *
 * V8 tunes its collector for throughput, and two of its defaults set stockd's tail latency
 * (measurements in bench/README.md, "The garbage-collector profile"):
 *
 * - Allocation-site pretenuring. When most objects from one allocation site once survived
 *   a collection (a bulk load, a saturated burst), V8 allocates that site's objects straight
 *   in the old generation from then on. The engine's short-lived objects (decoded reply
 *   batches, their arrays) then die there, and every young object they point to is kept
 *   alive and promoted until the next full collection. The API thread promoted ~2.4 MB
 *   at each scavenge with it (6–8 ms pauses), ~0.35 MB without (2–3 ms).
 * - The heap growing factor. After a full collection V8 lets the old generation grow by a
 *   factor chosen from how fast it collects; a shard's small heap, collected quickly, got
 *   about 10%, so a shard ran a full collection every 0.5–1 s, and each one's concurrent
 *   marking, on helper threads sharing the same cores, slowed the shard for ~25 ms.
 *
 * `latency` (what `stockd serve` runs with unless told otherwise) turns pretenuring off and
 * fixes the growing factor at 4: full collections become rare, at the price of a heap that
 * may grow to four times its live size between them. The fixed factor also overrides the
 * slower growth V8 would choose under memory pressure, so give the process room (a
 * container's memory limit) for it. `v8` sets nothing: the process keeps the flags it has,
 * V8's own unless its command line says otherwise.
 *
 * V8 flags belong to the process, not to a thread or an engine: they hold for every heap
 * in it, the shard workers' included, from the moment they are set (allocation sites
 * already pretenured stay so). Engine.start applies a profile only when its options name
 * one, before it starts its workers; an application that embeds the engine keeps its own
 * flags unless it asks.
 */
import { setFlagsFromString } from 'node:v8';

export type GcProfile = 'latency' | 'v8';

export const gcProfiles: readonly GcProfile[] = ['latency', 'v8'];

/** The V8 flags each profile sets. */
export const gcProfileFlags: Readonly<Record<GcProfile, readonly string[]>> = {
  latency: ['--no-allocation-site-pretenuring', '--heap-growing-percent=300'],
  v8: [],
};

/** Throws unless `profile` is one of gcProfiles. */
export function assertGcProfile(profile: unknown): asserts profile is GcProfile {
  if (!gcProfiles.includes(profile as GcProfile)) {
    throw new Error(`gc profile must be one of ${gcProfiles.join(', ')}, got ${String(profile)}`);
  }
}

/** Sets the profile's V8 flags for this process; returns them. */
export function applyGcProfile(profile: GcProfile): readonly string[] {
  assertGcProfile(profile);
  const flags = gcProfileFlags[profile];
  for (const flag of flags) setFlagsFromString(flag);
  return flags;
}
