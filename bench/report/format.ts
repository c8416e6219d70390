/** How the report writes numbers: one place, so tables, sentences and charts agree. */

export function whole(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

/** Milliseconds with precision where it matters: 0.412, 4.34, 48.6, 1,204. */
export function ms(value: number): string {
  if (value >= 100) return whole(value);
  if (value >= 10) return value.toFixed(1);
  if (value >= 1) return value.toFixed(2);
  return value.toFixed(3);
}

/** A ratio as a multiple: ×12.4, ×1.03, ×0.64. */
export function times(value: number): string {
  return `×${value >= 10 ? value.toFixed(1) : value.toFixed(2)}`;
}

export function yesNo(value: boolean | null): string {
  return value === null ? '?' : value ? 'yes' : '**no**';
}

export function plural(count: number, word: string): string {
  return `${count} ${word}${count === 1 ? '' : 's'}`;
}
