/**
 * ISO 8601 UTC text of a time, as Date.prototype.toISOString writes it ("2026-12-02T21:43:25.000Z"),
 * built from the UTC getters.
 *
 * Why not toISOString: on Node builds with full ICU (the NodeSource and official binaries, whose
 * ICU data is inside the executable), the first toISOString maps about 8 MB of ICU data pages into
 * the process, and they stay resident; the UTC getters touch none (measured with
 * /proc/PID/pagemap over the binary's icudt*_dat symbol: 0.4 MB for bare node, 8.6 MB after one
 * `new Date(0).toISOString()`, 0.4 MB after `getUTCFullYear()`; issue #15, resident memory).
 * Years outside 0000–9999 need the six-digit form: those are left to toISOString.
 */
const pad = (value: number, width: number): string => String(value).padStart(width, '0');

export function isoTime(at: number | Date = Date.now()): string {
  const date = typeof at === 'number' ? new Date(at) : at;
  const year = date.getUTCFullYear();
  // NaN (an invalid time) and the six-digit years: toISOString's own answer, or its RangeError.
  if (!(year >= 0 && year <= 9999)) return date.toISOString();
  return `${pad(year, 4)}-${pad(date.getUTCMonth() + 1, 2)}-${pad(date.getUTCDate(), 2)}T${pad(date.getUTCHours(), 2)}:${pad(date.getUTCMinutes(), 2)}:${pad(date.getUTCSeconds(), 2)}.${pad(date.getUTCMilliseconds(), 3)}Z`;
}
