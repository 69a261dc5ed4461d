/**
 * Limits on what the codec accepts, all checked before the codec allocates or recurses
 * (a length read from the wire is never trusted — STYLE.md, anti-pattern 1).
 */
export interface TtlvLimits {
  /** Whole message, header included. */
  maxMessageBytes: number;
  /** Nesting of Structures; the top-level item is depth 1. */
  maxDepth: number;
  /** Items in one message; bounds the tree's memory (an empty Structure is 8 wire bytes). */
  maxItems: number;
  /** Length of one Text String or Byte String value. */
  maxValueBytes: number;
  /** Length of one Big Integer value (an RSA-8192 modulus is 1,032 bytes). */
  maxBigIntegerBytes: number;
}

/**
 * Defaults: generous for a key agent (the deepest OASIS test-case message nests 9 levels; the
 * largest is a few KiB), small enough that a hostile peer cannot make one message cost more than
 * a few tens of MiB of memory.
 */
export const DEFAULT_TTLV_LIMITS: Readonly<TtlvLimits> = Object.freeze({
  maxMessageBytes: 1024 * 1024,
  maxDepth: 32,
  maxItems: 65_536,
  maxValueBytes: 1024 * 1024,
  maxBigIntegerBytes: 4096,
});

/** Limits already checked, by the frozen overrides object they came from (a caller's constant, used per message). */
const resolved = new WeakMap<Partial<TtlvLimits>, TtlvLimits>();

export function resolveTtlvLimits(overrides: Partial<TtlvLimits> | undefined): TtlvLimits {
  if (overrides === undefined) return DEFAULT_TTLV_LIMITS;
  const known = resolved.get(overrides);
  if (known) return known;
  const limits = { ...DEFAULT_TTLV_LIMITS, ...overrides };
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new RangeError(`TTLV limit ${name} must be a positive integer, got ${String(value)}`);
    }
  }
  if (Object.isFrozen(overrides)) resolved.set(overrides, limits);
  return limits;
}
