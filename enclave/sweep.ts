/**
 * One timer for a set of items, each checked every period: the clients a server waits on
 * (enclave/connection-guards.ts StallWatch) and the host's answers in flight (host/app.ts
 * IdleAnswers). A timer of each item's own (a Timeout and its callback, about 0.2 KB) was part of
 * what a server held, and its scavenges copied, per request. The timer is set while there is any
 * item and cleared with the last; each firing visits every item once, with one clock reading.
 *
 * The timer is unreferenced: it never keeps a process alive by itself. Each item is an answer on a
 * live connection (and the host's also on its connection to the enclave), whose sockets keep the
 * process alive for as long as the item matters; with those gone, a referenced timer only held a
 * stopping process (the host's shutdown, a test run) for up to a period more, for nothing.
 *
 * The sweep owns its items, each under a key (the item itself, or another object it is found by, as
 * StallWatch finds a request by its answer): a subclass adds them with `track`, removes them with
 * `untrack`, and says in `visit` what is done to each every period (which may untrack it). Nothing
 * of the sweep is public: a subclass shows what its callers need.
 */

export abstract class Sweep<K, V = K> {
  readonly #items = new Map<K, V>();
  #timer: ReturnType<typeof setTimeout> | null = null;
  /** Whether a visit that threw has been said (#visitThrew). */
  #warned = false;
  /** The timer's callback, made once. */
  readonly #run = () => this.#visitAll();

  constructor(
    /** Time between two sweeps. */
    protected readonly periodMs: number,
  ) {}

  /** Checks `item` at `at` (performance.now() when the sweep began); may untrack it. */
  protected abstract visit(item: V, at: number): void;

  /** Called as a sweep begins at `at`, before its visits (and only then: a sweep runs with items only). */
  protected began(_at: number): void {}

  /** Adds `item` under `key` (replacing what was under it) and sets the timer if it is not set. */
  protected track(key: K, item: V): void {
    this.#items.set(key, item);
    if (this.#timer === null) this.#arm();
  }

  /** How many items are tracked: the timer is set while there is any. */
  protected get size(): number {
    return this.#items.size;
  }

  /** The item under `key`, if it is tracked. */
  protected tracked(key: K): V | undefined {
    return this.#items.get(key);
  }

  /** Removes the item under `key`, clearing the timer with the last: whether there was one. */
  protected untrack(key: K): boolean {
    if (!this.#items.delete(key)) return false;
    if (this.#items.size === 0 && this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    return true;
  }

  #arm(): void {
    this.#timer = setTimeout(this.#run, this.periodMs);
    this.#timer.unref();
  }

  #visitAll(): void {
    // Set to null first: a visit that removes the last item then finds no timer to clear, and one
    // that adds an item sets the next (neither is lost, nor set twice).
    this.#timer = null;
    const at = performance.now();
    this.began(at);
    for (const item of this.#items.values()) {
      try {
        this.visit(item, at);
      } catch (error) {
        this.#visitThrew(error);
      }
    }
    if (this.#items.size > 0 && this.#timer === null) this.#arm();
  }

  /**
   * A visit that threw (none is meant to) stops neither the sweep nor the process: thrown out of
   * the timer's callback it was uncaught, and ended node, or (caught by a handler) left no next
   * sweep until the next add, every other item unchecked meanwhile. The item stays, visited again
   * next period. Said once per Sweep object (for its whole life, not once per period), as a process
   * warning naming the first error's kind only: its message may hold anything (a peer's address, a
   * path), and a visit that throws every time would otherwise say it once per item every period,
   * without bound; a later error of another kind is not said. Nothing of the error is trusted to
   * read: a name that is not a plain string (or whose getter throws) is said as "Error".
   * Once for life is meant: the first says this class's visits need fixing; a flood is worse.
   */
  #visitThrew(error: unknown): void {
    if (this.#warned) return;
    this.#warned = true;
    process.emitWarning(`${this.constructor.name}: a visit threw ${errorKind(error)} (said once)`);
  }
}

/** An error's name and string code, as far as they are plain strings: "Error" or typeof otherwise. */
function errorKind(error: unknown): string {
  try {
    if (!(error instanceof Error)) return typeof error; // a Proxy's trap may throw here too
    const { name, code } = error as Error & { code?: unknown };
    const kind = typeof name === "string" && /^[A-Za-z]{1,64}$/.test(name) ? name : "Error";
    return typeof code === "string" && /^[A-Z0-9_]{1,64}$/.test(code) ? `${kind} ${code}` : kind;
  } catch {
    return "Error";
  }
}
