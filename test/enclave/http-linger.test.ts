/**
 * closeAfterLinger (enclave/http.ts): how long a connection is kept after a server's own refusal
 * (400, 408, 431) or the host's BODY_TIMEOUT. The socket is destroyed UNREADABLE_LINGER_MS later
 * unless it closes first, and the timer neither outlives the socket nor keeps a process alive.
 */
import { EventEmitter } from "node:events";
import type { Socket } from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import { closeAfterLinger, UNREADABLE_LINGER_MS } from "../../enclave/http.ts";

/** A socket as closeAfterLinger sees it: its "close" event, `destroyed`, and `destroy`. */
function fakeSocket(): Socket & { destroyCalls: number } {
  const socket = Object.assign(new EventEmitter(), {
    destroyed: false,
    destroyCalls: 0,
    destroy() {
      socket.destroyCalls++;
      socket.destroyed = true;
      return socket;
    },
  });
  return socket as unknown as Socket & { destroyCalls: number };
}

const refTimers = () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;

afterEach(() => {
  vi.useRealTimers();
});

describe("closeAfterLinger", () => {
  it("destroys a socket still open UNREADABLE_LINGER_MS later, not before", () => {
    vi.useFakeTimers();
    const socket = fakeSocket();
    closeAfterLinger(socket);
    vi.advanceTimersByTime(UNREADABLE_LINGER_MS - 1);
    expect(socket.destroyCalls).toBe(0);
    vi.advanceTimersByTime(1);
    expect(socket.destroyCalls).toBe(1);
  });

  it("clears its timer when the socket closes first", () => {
    vi.useFakeTimers();
    const socket = fakeSocket();
    closeAfterLinger(socket);
    expect(vi.getTimerCount()).toBe(1);
    socket.emit("close");
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(UNREADABLE_LINGER_MS);
    expect(socket.destroyCalls).toBe(0);
  });

  it("keeps no process alive: its timer is not a referenced one", () => {
    const socket = fakeSocket();
    const before = refTimers();
    closeAfterLinger(socket);
    const during = refTimers();
    socket.emit("close");
    expect(during).toBe(before);
  });

  it("sets no timer for a socket already destroyed", () => {
    vi.useFakeTimers();
    const socket = fakeSocket();
    socket.destroy();
    closeAfterLinger(socket);
    expect(vi.getTimerCount()).toBe(0);
  });
});
