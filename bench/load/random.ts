/**
 * Seeded randomness for workloads: the same seed gives the same sequence of SKUs, so two
 * targets in one run (and two runs on two machines) are offered the same workload.
 */

/** mulberry32: tiny, fast, good enough to pick SKUs (not for anything secret). */
export class Random {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
}

/**
 * Zipf-distributed ranks in [0, n): rank k is drawn with probability ∝ 1 / (k + 1)^s.
 * s = 0 is uniform; s ≈ 1 is the classic skew of retail catalogues (a few best sellers take
 * most of the orders); larger s concentrates further. Sampling inverts the cumulative
 * distribution by binary search over a precomputed table (8 bytes per rank).
 */
export class ZipfSampler {
  private readonly cumulative: Float64Array;

  constructor(
    readonly n: number,
    readonly s: number,
  ) {
    if (!Number.isSafeInteger(n) || n < 1) throw new Error(`zipf needs n >= 1, got ${n}`);
    if (!(s >= 0)) throw new Error(`zipf needs s >= 0, got ${s}`);
    this.cumulative = new Float64Array(n);
    let sum = 0;
    for (let k = 0; k < n; k++) {
      sum += 1 / (k + 1) ** s;
      this.cumulative[k] = sum;
    }
    for (let k = 0; k < n; k++) this.cumulative[k]! /= sum;
  }

  sample(random: Random): number {
    const u = random.next();
    let low = 0;
    let high = this.n - 1;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.cumulative[mid]! < u) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  /** Probability of rank k (for tests and for describing a workload's skew). */
  probability(k: number): number {
    return this.cumulative[k]! - (k === 0 ? 0 : this.cumulative[k - 1]!);
  }
}
