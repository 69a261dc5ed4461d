/**
 * The agent's stable storage (ARCHITECTURE.md layer 5): LevelDB (classic-level) behind one small
 * interface. Every state transition is one batch written with sync; concurrent commits are
 * group-committed — while one synced batch is being written, the next ones queue and go out
 * together as a single batch, one fsync for many (the measured difference: TOOLCHAIN.md).
 */
import { ClassicLevel } from 'classic-level';
import { KmipEdgeError } from '../errors.ts';

export type BatchOperation = { type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string };

export interface KeyValueStore {
  get(key: string): Promise<Uint8Array | undefined>;
  /** Durable (synced) when the promise resolves; all of `operations` or none. */
  commit(operations: readonly BatchOperation[]): Promise<void>;
  /**
   * Written, all or none, but not synced: survives a process crash, not a power cut. For state
   * whose loss is harmless (it is re-derived or only makes a retry possible), on hot paths.
   */
  write(operations: readonly BatchOperation[]): Promise<void>;
  /** Keys and values whose key starts with `prefix`, in key order. */
  entries(prefix: string): AsyncIterable<[string, Uint8Array]>;
  close(): Promise<void>;
}

interface Waiting {
  operations: readonly BatchOperation[];
  resolve: () => void;
  reject: (error: Error) => void;
}

export class LevelStore implements KeyValueStore {
  private queue: Waiting[] = [];
  private writing = false;
  /** Counts of synced writes and of commits they carried, for tests and benchmarks. */
  readonly stats = { syncedWrites: 0, commits: 0 };

  private constructor(private readonly db: ClassicLevel<string, Uint8Array>) {}

  static async open(path: string): Promise<LevelStore> {
    const db = new ClassicLevel<string, Uint8Array>(path, { valueEncoding: 'view' });
    try {
      await db.open();
    } catch (error) {
      const locked = [error, (error as { cause?: unknown }).cause].some((e) => (e as { code?: string } | undefined)?.code === 'LEVEL_LOCKED');
      const code = locked ? 'STORE_LOCKED' : 'STORE_OPEN_FAILED';
      throw new KmipEdgeError(code, `cannot open the store at ${path}${code === 'STORE_LOCKED' ? ': another process holds it' : ''}`, { cause: error });
    }
    return new LevelStore(db);
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const value = await this.db.get(key);
    return value === undefined ? undefined : new Uint8Array(value.buffer, value.byteOffset, value.length);
  }

  commit(operations: readonly BatchOperation[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ operations, resolve, reject });
      if (!this.writing) void this.writeQueued();
    });
  }

  async write(operations: readonly BatchOperation[]): Promise<void> {
    await this.db.batch(operations as BatchOperation[], { sync: false });
  }

  private async writeQueued(): Promise<void> {
    this.writing = true;
    while (this.queue.length > 0) {
      const group = this.queue;
      this.queue = [];
      try {
        await this.db.batch(group.flatMap((w) => w.operations) as BatchOperation[], { sync: true });
        this.stats.syncedWrites++;
        this.stats.commits += group.length;
        for (const waiting of group) waiting.resolve();
      } catch (error) {
        const failure = new KmipEdgeError('STORE_WRITE_FAILED', 'a synced write to the store failed', { cause: error });
        for (const waiting of group) waiting.reject(failure);
      }
    }
    this.writing = false;
  }

  async *entries(prefix: string): AsyncIterable<[string, Uint8Array]> {
    for await (const [key, value] of this.db.iterator({ gte: prefix, lt: prefix + '\uffff' })) {
      yield [key, new Uint8Array(value.buffer, value.byteOffset, value.length)];
    }
  }

  async close(): Promise<void> {
    while (this.writing || this.queue.length > 0) await new Promise((resolve) => setImmediate(resolve));
    await this.db.close();
  }
}
