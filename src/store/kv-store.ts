/**
 * The agent's stable storage (ARCHITECTURE.md layer 5): LevelDB (classic-level) behind one small
 * interface. Every state transition is one batch written with sync; concurrent commits are
 * group-committed — while one synced batch is being written, the next ones queue and go out
 * together as a single batch, one fsync for many (the measured difference: TOOLCHAIN.md).
 *
 * A failed write (a full disk, an I/O error) makes the store unwritable until it has been
 * reopened: LevelDB appends to its log through a buffer, and a write that fails half-way leaves
 * the log out of step with the writer — later writes "succeed" but a reopen cannot read them back
 * (seen on a full tmpfs: a synced put acknowledged after space returned was gone after a reopen).
 * So after the first failure nothing more is written to that instance: commits are refused at
 * once with STORE_FULL (or STORE_WRITE_FAILED), reads keep working from it, and when free space
 * is back (checked every `probeMs`) the database is closed and opened again — the torn record at
 * the end of the log is dropped by LevelDB's recovery, every acknowledged write is kept — and
 * writing resumes. Each change of state is logged once.
 *
 * Files are owner-only (ARCHITECTURE.md §4 invariant 5, issue #13.8): LevelDB creates its files
 * itself, at any time (compactions), so the process umask is tightened to 077 before the store is
 * opened, the folder is made 0700 and files left by an earlier, laxer run are made 0600.
 */
import { chmodSync, readdirSync, statSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { join } from 'node:path';
import type { ClassicLevel } from 'classic-level';
import { KmipEdgeError } from '../errors.ts';
import { silentLogger, type Logger } from '../log.ts';

export type BatchOperation = { type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string };

export interface KeyValueStore {
  get(key: string): Promise<Uint8Array | undefined>;
  /**
   * Durable (synced) when the promise resolves; all of `operations` or none. Rejects with
   * STORE_FULL (no space left) or STORE_WRITE_FAILED, then nothing of it was written.
   */
  commit(operations: readonly BatchOperation[]): Promise<void>;
  /**
   * Written, all or none, but not synced: survives a process crash, not a power cut. For state
   * whose loss is harmless (it is re-derived or only makes a retry possible), on hot paths. Never
   * rejects: on a disk that cannot be written the write is dropped — the same loss as a crash.
   */
  write(operations: readonly BatchOperation[]): Promise<void>;
  /** Keys and values whose key starts with `prefix`, in key order. */
  entries(prefix: string): AsyncIterable<[string, Uint8Array]>;
  /** Why commits are refused now (STORE_FULL, STORE_WRITE_FAILED), or undefined while writable. */
  writeRefusal(): KmipEdgeError | undefined;
  close(): Promise<void>;
}

export interface LevelStoreOptions {
  log?: Logger;
  /** While unwritable: how often free space is checked (and a reopen tried). */
  probeMs?: number;
  /** Free bytes wanted, besides the size of LevelDB's logs (replayed into a table on reopen), before reopening. */
  headroomBytes?: number;
}

interface Waiting {
  operations: readonly BatchOperation[];
  sync: boolean;
  resolve: () => void;
  reject: (error: Error) => void;
}

const DEFAULT_PROBE_MS = 1000;
/**
 * LevelDB's memory (issue #15 footprint: the agent within 80 MB on a gateway). The defaults are
 * an 8 MB block cache and a 4 MB write buffer (two may be held at once, LevelDB's own docs), sized
 * for databases that are read through LevelDB; the agent reads its keys once into memory (the key
 * cache) and writes small synced batches, so 1 MB of each is plenty: its reads after start are the
 * rare cache misses, and a smaller write buffer only means smaller, more frequent level-0 tables.
 */
const BLOCK_CACHE_BYTES = 1024 * 1024;
const WRITE_BUFFER_BYTES = 1024 * 1024;
const DEFAULT_HEADROOM_BYTES = 1024 * 1024;

/** ENOSPC and quota errors, by the words LevelDB's Status carries (its IO errors have no errno). */
function isNoSpace(error: unknown): boolean {
  return /No space left|ENOSPC|quota exceeded|EDQUOT/i.test(`${(error as Error)?.message} ${(error as { cause?: Error })?.cause?.message ?? ''}`);
}

/** Owner-only: the store folder 0700, its files 0600; new files by the umask (issue #13.8). */
function enforceOwnerOnly(path: string): void {
  process.umask(process.umask() | 0o077);
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch {
    return; // not there yet: LevelDB creates it under the umask
  }
  if ((mode & 0o077) !== 0) chmodSync(path, 0o700);
  for (const name of readdirSync(path)) {
    const file = join(path, name);
    const stat = statSync(file);
    if (stat.isFile() && (stat.mode & 0o077) !== 0) chmodSync(file, 0o600);
  }
}

export class LevelStore implements KeyValueStore {
  private queue: Waiting[] = [];
  private writing = false;
  /** Set from the first failed write until the reopen that makes the store writable again. */
  private refusal: KmipEdgeError | undefined;
  private probe: NodeJS.Timeout | undefined;
  /** A reopen in progress: reads wait for it. */
  private reopening: Promise<void> | undefined;
  private closed = false;
  private readonly log: Logger;
  /** Counts of synced writes and of commits they carried, for tests and benchmarks; reopens after a failure. */
  readonly stats = { syncedWrites: 0, commits: 0, failedWrites: 0, reopens: 0 };

  private constructor(
    private readonly db: ClassicLevel<string, Uint8Array>,
    private readonly path: string,
    private readonly options: LevelStoreOptions,
  ) {
    this.log = options.log ?? silentLogger;
  }

  static async open(path: string, options: LevelStoreOptions = {}): Promise<LevelStore> {
    try {
      enforceOwnerOnly(path);
    } catch (error) {
      throw new KmipEdgeError('STORE_OPEN_FAILED', `cannot make the store at ${path} owner-only: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error });
    }
    // Loaded on first open, so that commands without a store (--version, ttlv, kmip …) never load the native module.
    const { ClassicLevel } = await import('classic-level');
    const db = new ClassicLevel<string, Uint8Array>(path, { valueEncoding: 'view', cacheSize: BLOCK_CACHE_BYTES, writeBufferSize: WRITE_BUFFER_BYTES });
    try {
      await db.open();
    } catch (error) {
      const locked = [error, (error as { cause?: unknown }).cause].some((e) => (e as { code?: string } | undefined)?.code === 'LEVEL_LOCKED');
      const code = locked ? 'STORE_LOCKED' : 'STORE_OPEN_FAILED';
      const detail = locked ? ': another process holds it' : isNoSpace(error) ? ': no space left on its disk' : '';
      throw new KmipEdgeError(code, `cannot open the store at ${path}${detail}`, { cause: error });
    }
    return new LevelStore(db, path, options);
  }

  /** Whether commits are accepted now. */
  get writable(): boolean {
    return this.refusal === undefined;
  }

  writeRefusal(): KmipEdgeError | undefined {
    return this.refusal;
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    if (this.reopening) await this.reopening.catch(() => undefined);
    const value = await this.db.get(key);
    return value === undefined ? undefined : new Uint8Array(value.buffer, value.byteOffset, value.length);
  }

  commit(operations: readonly BatchOperation[]): Promise<void> {
    if (this.refusal) return Promise.reject(this.refusal);
    return new Promise((resolve, reject) => {
      this.queue.push({ operations, sync: true, resolve, reject });
      if (!this.writing) void this.writeQueued();
    });
  }

  write(operations: readonly BatchOperation[]): Promise<void> {
    if (this.refusal) return Promise.resolve(); // dropped: see the interface
    return new Promise((resolve) => {
      this.queue.push({ operations, sync: false, resolve, reject: () => resolve() });
      if (!this.writing) void this.writeQueued();
    });
  }

  /**
   * One LevelDB write at a time, synced and unsynced writes alike (a group with any commit in it
   * is synced): after a failure not one more byte may reach that instance's log.
   */
  private async writeQueued(): Promise<void> {
    this.writing = true;
    while (this.queue.length > 0) {
      const group = this.queue;
      this.queue = [];
      if (this.refusal) {
        for (const waiting of group) waiting.reject(this.refusal);
        continue;
      }
      try {
        const sync = group.some((w) => w.sync);
        await this.db.batch(group.flatMap((w) => w.operations) as BatchOperation[], { sync });
        if (sync) this.stats.syncedWrites++;
        this.stats.commits += group.filter((w) => w.sync).length;
        for (const waiting of group) waiting.resolve();
      } catch (error) {
        this.stats.failedWrites++;
        this.becomeUnwritable(error);
        for (const waiting of group) waiting.reject(this.refusal!);
      }
    }
    this.writing = false;
  }

  private becomeUnwritable(error: unknown): void {
    const full = isNoSpace(error);
    this.refusal = full
      ? new KmipEdgeError('STORE_FULL', `no space left for the store at ${this.path}: nothing is stored until space is freed`, { cause: error })
      : new KmipEdgeError('STORE_WRITE_FAILED', `a write to the store at ${this.path} failed: nothing is stored until it has been reopened`, { cause: error });
    this.log.error({ event: 'store_unwritable', code: this.refusal.code, path: this.path, reason: (error as Error).message },
      'store unwritable: refusing what needs a write (grants, pushes, cache fills), serving what is held; retrying by itself');
    this.scheduleProbe();
  }

  private scheduleProbe(): void {
    if (this.closed) return;
    this.probe = setTimeout(() => void this.tryReopen(), this.options.probeMs ?? DEFAULT_PROBE_MS);
    this.probe.unref();
  }

  /** When there is room for LevelDB's recovery (its logs become a table) and some: close and open again. */
  private async tryReopen(): Promise<void> {
    this.probe = undefined;
    if (this.closed || !this.refusal) return;
    try {
      if (this.refusal.code === 'STORE_FULL') {
        const { bavail, bsize } = await statfs(this.path);
        const logs = readdirSync(this.path).filter((f) => f.endsWith('.log')).reduce((sum, f) => sum + statSync(join(this.path, f)).size, 0);
        if (bavail * bsize < logs + (this.options.headroomBytes ?? DEFAULT_HEADROOM_BYTES)) return this.scheduleProbe();
      }
      if (this.closed) return;
      while (this.writing) await new Promise((resolve) => setImmediate(resolve));
      this.reopening = (async () => {
        await this.db.close();
        await this.db.open();
      })();
      await this.reopening;
    } catch (error) {
      // Not reopened (still no room after all, or the disk still fails): tried again later. Should
      // the database have stayed closed, reads fail until then (they do not wait on the disk).
      this.reopening = undefined;
      this.log.debug({ event: 'store_reopen_failed', reason: (error as Error).message }, 'store not reopened yet');
      this.scheduleProbe();
      return;
    }
    this.reopening = undefined;
    this.stats.reopens++;
    const was = this.refusal.code;
    this.refusal = undefined;
    this.log.info({ event: 'store_writable', was, path: this.path }, 'store writable again: grants, pushes and cache fills resume');
  }

  async *entries(prefix: string): AsyncIterable<[string, Uint8Array]> {
    if (this.reopening) await this.reopening.catch(() => undefined);
    for await (const [key, value] of this.db.iterator({ gte: prefix, lt: prefix + '\uffff' })) {
      yield [key, new Uint8Array(value.buffer, value.byteOffset, value.length)];
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.probe);
    while (this.writing || this.queue.length > 0) await new Promise((resolve) => setImmediate(resolve));
    if (this.reopening) await this.reopening.catch(() => undefined);
    if (this.db.status === 'open') await this.db.close();
  }
}
