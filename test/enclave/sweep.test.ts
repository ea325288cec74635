/**
 * Sweep (enclave/sweep.ts): one timer for a set of items, set while there is any, visiting each
 * once per period. Its timer is held (test/helpers/held-timers.ts): it fires when the test fires it.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { Sweep } from "../../enclave/sweep.ts";
import { holdTimeouts } from "../helpers/held-timers.ts";

const PERIOD_MS = 4321;

/** A sweep over a Set of names that records its visits and drops the names in `drop` when visited. */
class Names extends Sweep<string> {
  readonly visits: [string, number][] = [];
  readonly drop = new Set<string>();
  /** Names whose visit throws. */
  readonly fail = new Set<string>();

  constructor() {
    super(PERIOD_MS);
  }

  add(name: string): void {
    this.track(name, name);
  }

  has(name: string): boolean {
    return this.tracked(name) !== undefined;
  }

  delete(name: string): void {
    this.untrack(name);
  }

  protected visit(name: string, at: number): void {
    this.visits.push([name, at]);
    if (this.fail.has(name)) throw new Error(`visit of ${name} failed: secret-in-message`);
    if (this.drop.has(name)) this.delete(name);
  }
}

const refTimers = () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;

afterEach(() => {
  vi.restoreAllMocks();
});

describe("Sweep", () => {
  it("sets one timer for all its items, clears it with the last, and sets it again for the next", () => {
    const timers = holdTimeouts(PERIOD_MS);
    const sweep = new Names();
    sweep.add("a");
    sweep.add("b");
    sweep.add("c");
    expect(timers.held).toHaveLength(1);
    sweep.delete("a");
    sweep.delete("b");
    expect(timers.held[0]?.cleared).toBe(false);
    sweep.delete("c");
    sweep.delete("c"); // a second delete clears nothing more
    expect(timers.held[0]?.cleared).toBe(true);
    sweep.add("d");
    expect(timers.held).toHaveLength(2);
    expect(timers.held[1]?.cleared).toBe(false);
  });

  it("visits every item once per firing with one clock reading, and sets the next while any is left", () => {
    const timers = holdTimeouts(PERIOD_MS);
    const sweep = new Names();
    sweep.add("a");
    sweep.add("b");
    sweep.drop.add("a");
    expect(timers.held[0]?.fire()).toBe(true);
    expect(sweep.visits.map(([name]) => name)).toEqual(["a", "b"]);
    expect(new Set(sweep.visits.map(([, at]) => at)).size).toBe(1);
    expect([sweep.has("a"), sweep.has("b")]).toEqual([false, true]);
    expect(timers.held).toHaveLength(2);
    sweep.drop.add("b");
    expect(timers.held[1]?.fire()).toBe(true);
    expect(sweep.visits.map(([name]) => name)).toEqual(["a", "b", "b"]);
    // The visit removed the last item: no timer is set, and the next item sets one.
    expect(timers.held).toHaveLength(2);
    sweep.add("c");
    expect(timers.held).toHaveLength(3);
  });

  it("goes on past a visit that throws: visits the others, sets the next sweep, and warns without the message", () => {
    const timers = holdTimeouts(PERIOD_MS);
    const warn = vi.spyOn(process, "emitWarning").mockImplementation(() => {});
    const sweep = new Names();
    sweep.add("a");
    sweep.add("b");
    sweep.fail.add("a");
    // A throw out of the timer's callback is uncaught: it stopped node (and left no next sweep).
    expect(() => timers.held[0]?.fire()).not.toThrow();
    expect(sweep.visits.map(([name]) => name)).toEqual(["a", "b"]);
    expect(timers.held).toHaveLength(2);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0]?.[0])).toMatch(/^Names: a visit threw Error \(said once\)$/);
    expect(JSON.stringify(warn.mock.calls[0])).not.toContain("secret");
    // The item that threw is kept and visited again.
    sweep.fail.clear();
    expect(timers.held[1]?.fire()).toBe(true);
    expect(sweep.visits.map(([name]) => name)).toEqual(["a", "b", "a", "b"]);
  });

  it("warns once per Sweep object of a visit that throws every time, not once per item and period (the log stays bounded)", () => {
    const timers = holdTimeouts(PERIOD_MS);
    const warn = vi.spyOn(process, "emitWarning").mockImplementation(() => {});
    const sweep = new Names();
    for (const name of ["a", "b", "c"]) {
      sweep.add(name);
      sweep.fail.add(name);
    }
    for (let period = 0; period < 4; period++) expect(timers.held[period]?.fire()).toBe(true);
    expect(sweep.visits).toHaveLength(12);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0]?.[0])).toMatch(/^Names: a visit threw Error \(said once\)$/);
  });

  it("warns of a thrown value whose name cannot be read, and goes on", () => {
    const timers = holdTimeouts(PERIOD_MS);
    const warn = vi.spyOn(process, "emitWarning").mockImplementation(() => {});
    class Hostile extends Sweep<string> {
      constructor() {
        super(PERIOD_MS);
        this.track("a", "a");
      }
      protected visit(): void {
        const error = new Error("secret");
        Object.defineProperty(error, "name", {
          get() {
            throw new Error("secret");
          },
        });
        throw error;
      }
    }
    new Hostile();
    expect(() => timers.held[0]?.fire()).not.toThrow();
    expect(timers.held).toHaveLength(2);
    expect(String(warn.mock.calls[0]?.[0])).toMatch(/^Hostile: a visit threw Error \(said once\)$/);
  });

  it("keeps no process alive by its timer: its items' sockets do that while they matter", () => {
    const sweep = new Names();
    const before = refTimers();
    sweep.add("a");
    expect(refTimers()).toBe(before);
    sweep.delete("a");
  });
});
