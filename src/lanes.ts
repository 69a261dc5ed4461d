const IDLE = Promise.resolve();
const settledAnyway = () => undefined;

/**
 * Work serialized per key: what is run for one key starts only when the previous work for that
 * key has settled (always in a later microtask, never inside the caller), while different keys
 * proceed concurrently. A failure stays its caller's and does not stop the lane. Idle lanes are
 * forgotten.
 */
export class Lanes {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const turn = (this.tails.get(key) ?? IDLE).then(work);
    const settled = turn.then(undefined, settledAnyway);
    this.tails.set(key, settled);
    void settled.then(() => this.tails.get(key) === settled && this.tails.delete(key));
    return turn;
  }
}
