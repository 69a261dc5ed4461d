/**
 * The effective configuration of `kmip-edge run`: the YAML file (if any), then the flags over it
 * (a flag replaces the file's value of its field), validated by ./schema.ts as one object. Every
 * problem becomes one line naming the field (as the flag when a flag set it, else as
 * `FILE: path.in.file`), the value given and what is allowed.
 */
import { dirname, isAbsolute, resolve } from 'node:path';
import { isScalar, parseDocument, visit } from 'yaml';
import { readInputLimited } from '../cli/input.ts';
import { isKmipEdgeError } from '../errors.ts';
import { ConfigError } from './config-error.ts';
import { FILE_FIELDS, RUN_FLAGS, type ParsedRunFlags, type RunFlag } from './flags.ts';
import { agentConfigSchema, type AgentConfig } from './schema.ts';
import { validate, type Issue } from './validate.ts';

/** A configuration is a page of settings: 1 MiB is generous, and bounds what the YAML parser holds. */
export const MAX_CONFIG_BYTES = 1024 * 1024;
/** YAML aliases expand; bounded against "billion laughs" documents (the yaml package's own guard). */
const MAX_ALIASES = 100;

/** Field names that hold a secret: refused inline, with a pointer to the file field to use. */
const INLINE_SECRET = /^(password|passphrase|secret|token|privateKey|keyPem|secretHex)$/i;

type Raw = Record<string, unknown>;

/** Reads and parses the YAML file; a syntax error is reported with its line and column. */
export function readConfigFile(path: string): Raw {
  let bytes: Buffer;
  try {
    bytes = readInputLimited(path, MAX_CONFIG_BYTES);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (!isKmipEdgeError(error, 'CLI_INPUT')) {
      if (code === undefined || !/^E[A-Z]+$/.test(code)) throw error;
      throw new ConfigError('CONFIG_UNREADABLE', [`${path}: cannot read the configuration file: ${code}`], { cause: error });
    }
    const detail = error.message.replace(/^cannot open \S+: /, '').replace(/^\S+ has /, 'it has ').replace(/^input exceeds/, 'it exceeds');
    throw new ConfigError('CONFIG_UNREADABLE', [`${path}: cannot read the configuration file: ${detail}`], { cause: error });
  }
  // logLevel 'error': the library's warnings go nowhere (they would be lines on stderr that are
  // not ours); what they warn of is refused below as an error instead.
  const document = parseDocument(bytes.toString('utf8'), { uniqueKeys: true, prettyErrors: true, logLevel: 'error' });
  visit(document, {
    Pair(_, pair) {
      // A mapping or list as a key (`? {a: 1}`) has no setting name; YAML would stringify it.
      if (pair.key !== null && !isScalar(pair.key)) {
        const at = (pair.key as { range?: [number, number, number] }).range?.[0] ?? 0;
        document.errors.push(Object.assign(new Error('a key must be a plain name, not a mapping or list'), { linePos: [lineCol(bytes, at)] }) as never);
      }
    },
  });
  if (document.errors.length > 0) {
    throw new ConfigError('CONFIG_INVALID', document.errors.map((error) => {
      const at = error.linePos?.[0];
      const message = error.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
      return `${path}:${at ? `${at.line}:${at.col}` : ''} not valid YAML: ${message}`;
    }));
  }
  let value: unknown;
  try {
    value = document.toJS({ maxAliasCount: MAX_ALIASES });
  } catch (error) {
    throw new ConfigError('CONFIG_INVALID', [`${path}: not valid YAML: ${(error as Error).message.split('\n')[0]}`]);
  }
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new ConfigError('CONFIG_INVALID', [`${path}: got ${show(value)}; expected a mapping of settings (data:, upstream:, mqtt:, …)`]);
  return value as Raw;
}

/** The file's values with its relative file paths made absolute against its folder (as systemd and Prometheus do). */
function resolveFilePaths(raw: Raw, base: string): Raw {
  const out = structuredClone(raw);
  for (const path of FILE_FIELDS) {
    const keys = path.split('.');
    const parent = keys.slice(0, -1).reduce<unknown>((node, key) => (isMapping(node) ? node[key] : undefined), out);
    const last = keys.at(-1)!;
    if (!isMapping(parent)) continue;
    const value = parent[last];
    const fix = (item: unknown): unknown => (typeof item === 'string' && item !== '' && !isAbsolute(item) ? resolve(base, item) : item);
    parent[last] = Array.isArray(value) ? value.map(fix) : fix(value);
  }
  return out;
}

function isMapping(value: unknown): value is Raw {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Sets `path` in `raw`, making the sections on the way (a flag's value replaces the file's). */
function setPath(raw: Raw, path: string, value: unknown): void {
  const keys = path.split('.');
  let node = raw;
  for (const key of keys.slice(0, -1)) {
    if (!isMapping(node[key])) node[key] = {};
    node = node[key] as Raw;
  }
  node[keys.at(-1)!] = value;
}

function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
  return path.reduce<unknown>((node, key) => (isMapping(node) || Array.isArray(node) ? (node as Record<PropertyKey, unknown>)[key] : undefined), raw);
}

/** A value as the operator wrote it, shortened: "5696" (a string) and 5696 (a number) stay distinct. */
function show(value: unknown): string {
  if (Array.isArray(value)) return `a list of ${value.length}`;
  if (isMapping(value)) return 'a mapping';
  if (typeof value === 'number' || typeof value === 'boolean') return `${String(value)} (a ${typeof value})`;
  const text = value === null ? 'null (empty)' : JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}…` : text;
}

const FLAG_BY_PATH = new Map(Object.entries(RUN_FLAGS as Record<string, RunFlag>).map(([name, flag]) => [flag.path, `--${name}`]));

export interface ConfigSources {
  /** The configuration file as given on the command line (named in messages), if any. */
  file?: string;
  flags: Pick<ParsedRunFlags, 'values' | 'flagOf'>;
}

/** Validates the file (if any) merged with the flags; throws ConfigError with one line per problem. */
export function loadAgentConfig(sources: ConfigSources): AgentConfig {
  const raw: Raw = sources.file === undefined ? {} : resolveFilePaths(readConfigFile(sources.file), dirname(resolve(sources.file)));
  for (const [path, value] of sources.flags.values) setPath(raw, path, value);
  // A missing upstream is reported field by field (each with its flag), not as one missing section.
  if (raw.upstream === undefined) raw.upstream = {};
  const result = validate(agentConfigSchema, raw);
  if (result.ok) return result.value;
  // One line per field: a field that fails its own check may fail a rule across fields too.
  const seen = new Set<string>();
  const issues = result.issues.filter((issue) => {
    const key = `${issue.unknownFields ? 'keys:' : ''}${issue.path.map(String).join('.')}`;
    return !seen.has(key) && Boolean(seen.add(key));
  });
  throw new ConfigError('CONFIG_INVALID', issues.flatMap((issue) => describeIssue(issue, raw, sources)));
}

/** A field (dotted path) in the operator's terms, for messages about it after validation. */
export function fieldName(path: string, sources: ConfigSources): string {
  return where(path.split('.'), sources);
}

/** Where a field is, in the operator's terms: the flag that set it, else the file and path, else the flag that would set it. */
function where(path: readonly PropertyKey[], sources: ConfigSources): string {
  const dotted = path.map(String).join('.');
  for (let n = path.length; n > 0; n--) {
    const flag = sources.flags.flagOf.get(path.slice(0, n).map(String).join('.'));
    if (flag) return n === path.length ? flag : `${flag} (${dotted})`;
  }
  if (sources.file !== undefined) return `${sources.file}: ${dotted}`;
  return FLAG_BY_PATH.get(dotted) ?? dotted;
}

function describeIssue(issue: Issue, raw: Raw, sources: ConfigSources): string[] {
  if (issue.unknownFields) {
    return issue.unknownFields.map((key) => {
      const path = [...issue.path, key];
      if (INLINE_SECRET.test(key)) return `${where(path, sources)}: secrets are not accepted inline (value not shown); put it in a file, owner-only, and give the file's path (e.g. ${[...issue.path, `${key}File`].join('.')})`;
      return `${where(path, sources)}: unknown field (got ${show(valueAt(raw, path))}); ${issue.message}`;
    });
  }
  const value = valueAt(raw, issue.path);
  return [`${where(issue.path, sources)}: ${value === undefined ? 'missing' : `got ${show(value)}`}; expected ${issue.message}`];
}

/**
 * The configuration as `config check` prints it. Secrets never appear in it because the schema
 * has no field that holds one — only paths of files that do (an inline secret is refused).
 */
export function describeConfig(config: AgentConfig): Record<string, unknown> {
  return JSON.parse(JSON.stringify(config)) as Record<string, unknown>;
}

/** 1-based line and column of a character offset, as the YAML library reports them. */
function lineCol(bytes: Buffer, offset: number): { line: number; col: number } {
  const before = bytes.toString('utf8').slice(0, offset).split('\n');
  return { line: before.length, col: before.at(-1)!.length + 1 };
}
