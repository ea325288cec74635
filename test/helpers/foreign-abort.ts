/**
 * An AbortController and its signal made in another realm (a new vm context), as jsdom makes its
 * own: classes of that realm with AbortSignal's members, so no instance of this realm's AbortSignal.
 */
import vm from "node:vm";

export interface ForeignController {
  readonly signal: AbortSignal;
  abort(reason?: unknown): void;
}

export const foreignController: () => ForeignController = vm.runInNewContext(`(() => {
  class AbortSignal {
    constructor() { this.aborted = false; this.reason = undefined; this.onabort = null; this._listeners = []; }
    addEventListener(type, listener, options) {
      if (type === "abort") this._listeners.push({ listener, once: options?.once === true });
    }
    removeEventListener(type, listener) {
      this._listeners = this._listeners.filter((l) => l.listener !== listener);
    }
    dispatchEvent() { return true; }
    throwIfAborted() { if (this.aborted) throw this.reason; }
  }
  class AbortController {
    constructor() { this.signal = new AbortSignal(); }
    abort(reason) {
      const signal = this.signal;
      if (signal.aborted) return;
      signal.aborted = true;
      signal.reason = reason === undefined ? new Error("This operation was aborted") : reason;
      const event = { type: "abort", target: signal };
      for (const l of signal._listeners.slice()) {
        if (l.once) signal.removeEventListener("abort", l.listener);
        typeof l.listener === "function" ? l.listener.call(signal, event) : l.listener.handleEvent(event);
      }
      if (typeof signal.onabort === "function") signal.onabort(event);
    }
  }
  return () => new AbortController();
})()`);
