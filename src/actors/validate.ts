/** Input checks shared by decide and (later) the API schemas. Pure; no IO. */
import type { Limits } from '../config.js';

export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

/** A SKU, location, channel, reservation id, order id or key: a non-empty string within idBytesMax. */
export function isValidId(value: unknown, limits: Limits): value is string {
  if (typeof value !== 'string' || value.length === 0) return false;
  if (value.length * 3 <= limits.idBytesMax) return true;
  return value.length <= limits.idBytesMax && utf8Length(value) <= limits.idBytesMax;
}

/** A positive whole number of units (a line, a shipment, an adjustment's size). */
export function isValidQuantity(value: unknown, limits: Limits): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0 && value <= limits.quantityMax;
}

/** A stock level: zero or a positive whole number of units. */
export function isValidLevel(value: unknown, limits: Limits): value is number {
  return (
    typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 && value <= limits.quantityMax
  );
}

export function isValidTtl(value: unknown, limits: Limits): value is number {
  return (
    typeof value === 'number' &&
    Number.isSafeInteger(value) &&
    value >= limits.ttlSecondsMin &&
    value <= limits.ttlSecondsMax
  );
}

export function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}
