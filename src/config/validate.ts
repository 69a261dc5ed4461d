/**
 * A small validator for the configuration (./schema.ts): exactly what that schema uses — strict
 * mappings, non-empty strings with an extra test, one-of, lists, mappings of names, optional
 * fields, defaults and rules across fields. It replaced zod, which was 160 kB of the 1 MB bundle
 * budget (issue #15) for one 130-line schema.
 *
 * Every check knows what it allows, as a phrase: an issue is a field path and that phrase, which
 * ./loader.ts turns into "FIELD: got VALUE; expected PHRASE". The order of the issues, and when the
 * rules across fields run, are zod's (the messages the tests pin were written against it).
 */

/** Where a value is: mapping keys and list indexes from the top of the configuration. */
export type Path = (string | number)[];

export interface Issue {
  path: Path;
  /** What is allowed at `path`; for unknown fields, "allowed fields: …". */
  message: string;
  /** Set when the problem is fields that the mapping at `path` does not have. */
  unknownFields?: string[];
}

/**
 * The issues of one validation. `wrongTypes` counts values of the wrong type (or not among those
 * allowed): the rules across fields do not run over such a value, since their code reads each
 * field as its declared type. A value of the right type that fails a further test (an empty
 * name, a malformed address, an unknown field) leaves them running, so that one pass reports all.
 */
interface Findings {
  issues: Issue[];
  wrongTypes: number;
}

type Check<T> = (value: unknown, path: Path, found: Findings) => T;

/** `Omittable`: an absent field is left out of its mapping's output (see `optional`). */
export class Schema<T, Omittable extends boolean = false> {
  constructor(
    /** Validates `value` found at `path`, records its issues and returns it as validated (defaults filled in). */
    readonly check: Check<T>,
    readonly omittable: Omittable,
  ) {}

  /** Absent (undefined) is allowed. */
  optional(): Schema<T | undefined, true> {
    return new Schema((value, path, found) => (value === undefined ? undefined : this.check(value, path, found)), true);
  }

  /** Absent means `fallback` (a copy each time: the output may be changed by its user). */
  default(fallback: Exclude<T, undefined>): Schema<Exclude<T, undefined>> {
    return new Schema((value, path, found) => (value === undefined ? structuredClone(fallback) : (this.check(value, path, found) as Exclude<T, undefined>)), false);
  }

  /** A further test, only of a value that passed the checks before it (one issue per field). */
  refine(test: (value: T) => boolean, expected: string): Schema<T, Omittable> {
    return new Schema((value, path, found) => {
      const before = found.issues.length;
      const out = this.check(value, path, found);
      if (found.issues.length === before && !test(out)) found.issues.push({ path, message: expected });
      return out;
    }, this.omittable);
  }

  /**
   * Rules across fields, run over the validated value unless a field in it had the wrong type;
   * `problem` records an issue at a path from the top (the field the operator has to change).
   */
  rules(apply: (value: T, problem: (path: Path, message: string) => void) => void): Schema<T, Omittable> {
    return new Schema((value, path, found) => {
      const before = found.wrongTypes;
      const out = this.check(value, path, found);
      if (found.wrongTypes === before) apply(out, (at, message) => void found.issues.push({ path: at, message }));
      return out;
    }, this.omittable);
  }
}

/** The output of a schema, for declaring the configuration's type from its schema. */
export type Output<S> = S extends Schema<infer T, boolean> ? T : never;

function wrongType(found: Findings, path: Path, expected: string): void {
  found.issues.push({ path, message: expected });
  found.wrongTypes++;
}

/** A mapping as YAML and the flags give one (not null, not a list). */
function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A non-empty string; `expected` is what every message about it says is allowed. */
export function text(expected: string): Schema<string> {
  return new Schema((value, path, found) => {
    if (typeof value !== 'string') wrongType(found, path, expected);
    else if (value === '') found.issues.push({ path, message: expected });
    return value as string;
  }, false);
}

/** One of `values`. */
export function oneOf<const V extends readonly string[]>(values: V, expected: string): Schema<V[number]> {
  return new Schema((value, path, found) => {
    if (!values.includes(value as string)) wrongType(found, path, expected);
    return value as V[number];
  }, false);
}

/** A list whose every item passes `item`. */
export function list<T>(item: Schema<T, boolean>, expected: string): Schema<T[]> {
  return new Schema((value, path, found) => {
    if (!Array.isArray(value)) {
      wrongType(found, path, expected);
      return value as T[];
    }
    return value.map((entry, index) => item.check(entry, [...path, index], found));
  }, false);
}

/** A mapping of names (each passing `key`) to values (each passing `item`); a bad name is reported with `expected`. */
export function record<T>(key: Schema<string, boolean>, item: Schema<T, boolean>, expected: string): Schema<Record<string, T>> {
  return new Schema((value, path, found) => {
    if (!isMapping(value)) {
      wrongType(found, path, expected);
      return value as Record<string, T>;
    }
    const out: Record<string, T> = {};
    for (const name of Object.keys(value)) {
      // `__proto__` would set the output's prototype, not a key: it is skipped (as zod skipped it).
      if (name === '__proto__') continue;
      const keyFindings: Findings = { issues: [], wrongTypes: 0 };
      key.check(name, [], keyFindings);
      if (keyFindings.issues.length > 0) wrongType(found, [...path, name], expected);
      else out[name] = item.check(value[name], [...path, name], found);
    }
    return out;
  }, false);
}

type Shape = Record<string, Schema<unknown, boolean>>;
type Flatten<T> = { [K in keyof T]: T[K] };
type OmittableKeys<S extends Shape> = { [K in keyof S]: S[K] extends Schema<unknown, true> ? K : never }[keyof S];
export type ObjectOutput<S extends Shape> = Flatten<{ [K in Exclude<keyof S, OmittableKeys<S>>]: Output<S[K]> } & { [K in OmittableKeys<S>]?: Output<S[K]> }>;

/**
 * A mapping with exactly the fields of `shape`: an unknown field is an issue naming the allowed
 * ones (a misspelt field would otherwise be ignored). The output has the fields in `shape` order.
 */
export function strictObject<S extends Shape>(shape: S, expected: string): Schema<ObjectOutput<S>> {
  const fields = Object.keys(shape);
  return new Schema((value, path, found) => {
    if (!isMapping(value)) {
      wrongType(found, path, expected);
      return value as ObjectOutput<S>;
    }
    const out: Record<string, unknown> = {};
    for (const [name, field] of Object.entries(shape)) {
      if (field.omittable && !(name in value)) continue;
      const checked = field.check(value[name], [...path, name], found);
      if (checked !== undefined) out[name] = checked;
    }
    const unknown = Object.keys(value).filter((name) => !fields.includes(name));
    if (unknown.length > 0) found.issues.push({ path, message: `allowed fields: ${fields.join(', ')}`, unknownFields: unknown });
    return out as ObjectOutput<S>;
  }, false);
}

/** Validates `value` against `schema`: the output, or every issue found (in document order). */
export function validate<T>(schema: Schema<T, boolean>, value: unknown): { ok: true; value: T } | { ok: false; issues: Issue[] } {
  const found: Findings = { issues: [], wrongTypes: 0 };
  const out = schema.check(value, [], found);
  return found.issues.length === 0 ? { ok: true, value: out } : { ok: false, issues: found.issues };
}
