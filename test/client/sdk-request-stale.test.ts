/**
 * A sealed request the host holds past the enclave's ±2 min window (the enclave's clock moved on
 * between the seal and the open; Date is faked and moved, nothing waits) is refused by the enclave as
 * REQUEST_STALE, which the SDK reports as a transport error that says both causes it cannot tell
 * apart (this machine's clock, or the hold) and what to do, in its own words: no time the host could
 * have written. A hold inside the window is answered.
 */
import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ClientError } from "../../client/errors.ts";
import { fetchTransport, type Transport } from "../../client/transport.ts";
import { DEFAULT_REPLAY_WINDOW_MS, ReplayGuard } from "../../sealed/replay.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { closeServers, connectTo } from "./helpers.ts";

afterEach(async () => {
  vi.useRealTimers();
  await closeServers();
});

/** The codes docs/errors.md's client table lists for `kind` (its "typical codes" cell). */
function documentedCodesOfKind(kind: string): string[] {
  const docs = readFileSync(new URL("../../docs/errors.md", import.meta.url), "utf8");
  const section = docs.split(/^## /m).find((part) => part.startsWith("Client ("));
  if (section === undefined) throw new Error("docs/errors.md: no Client section");
  const row = section.split("\n").find((line) => line.startsWith(`| \`${kind}\``));
  if (row === undefined) throw new Error(`docs/errors.md: no ${kind} row in the Client table`);
  return [...(row.split("|")[2] ?? "").matchAll(/`([A-Z0-9_]+)`/g)].map((m) => m[1] as string);
}

/** A transport that, like a host holding the request, moves the clock on by `holdMs` before a sealed request goes on. */
function holdingSealed(holdMs: number): { transport: Transport; held: () => number } {
  const inner = fetchTransport(fetch);
  let held = 0;
  const transport: Transport = (url, request) => {
    if (request.method === "POST" && new URL(url).pathname.endsWith("/sealed")) {
      vi.setSystemTime(Date.now() + holdMs);
      held++;
    }
    return inner(url, request);
  };
  return { transport, held: () => held };
}

describe("a sealed request held on the way", () => {
  it("the window the SDK names is the enclave's: ReplayGuard's default, 120 000 ms", () => {
    expect([DEFAULT_REPLAY_WINDOW_MS, new ReplayGuard().windowMs]).toEqual([120_000, 120_000]);
  });

  it("past the window (120 001 ms) → transport REQUEST_STALE saying: this machine's clock, or the hold", async () => {
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() });
    const hold = holdingSealed(DEFAULT_REPLAY_WINDOW_MS + 1);
    const { session } = await connectTo({ transport: hold.transport });
    const error = await rejectionOf(session.complete("hello"), ClientError);
    expect(hold.held()).toBe(1);
    expect([error.kind, error.code, error.status, error.origin]).toEqual(["transport", "REQUEST_STALE", 400, "host"]);
    expect(error.message).toBe(
      "http://enclave.test/v1/sealed: HTTP 400: host reports that the enclave refused the sealed request as stale (REQUEST_STALE: its timestamp outside the enclave's window of ±2 min): check this machine's clock against the enclave's; or the request was held on the way longer than that",
    );
    // The enclave's own text (its window in ms, "enclave time") is the host's to alter: not repeated.
    expect(error.message).not.toContain("120000");
    // docs/errors.md's client table lists it under that kind.
    expect(documentedCodesOfKind(error.kind)).toContain("REQUEST_STALE");
  });

  it("inside the window (120 000 ms) → answered", async () => {
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() });
    const hold = holdingSealed(DEFAULT_REPLAY_WINDOW_MS);
    const { session } = await connectTo({ transport: hold.transport });
    expect((await session.complete("hello")).text).toBe("ok");
    expect(hold.held()).toBe(1);
  });
});
