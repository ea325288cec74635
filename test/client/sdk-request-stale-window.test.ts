/**
 * The window a REQUEST_STALE refusal names is sealed/replay.ts's DEFAULT_REPLAY_WINDOW_MS, not a
 * number of the SDK's own: here that constant is mocked to 300 000 ms (the ReplayGuard the enclave
 * builds keeps its own binding, 120 000 ms), and the SDK's text follows the constant (±5 min).
 * sdk-request-stale.test.ts covers the refusal itself with the real window.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { ClientError } from "../../client/errors.ts";
import { fetchTransport } from "../../client/transport.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { closeServers, connectTo } from "./helpers.ts";

vi.mock("../../sealed/replay.ts", async (importOriginal) => ({
  ...(await importOriginal<typeof import("../../sealed/replay.ts")>()),
  DEFAULT_REPLAY_WINDOW_MS: 300_000,
}));

afterEach(closeServers);

describe("REQUEST_STALE's window", () => {
  it("is named from DEFAULT_REPLAY_WINDOW_MS (mocked to 300 000 ms: ±5 min)", async () => {
    // The host answers the sealed request with a REQUEST_STALE of its own making.
    const transport = fetchTransport(async (url, init) =>
      init?.method === "POST" && new URL(String(url)).pathname.endsWith("/sealed")
        ? Response.json({ error: { code: "REQUEST_STALE", message: "stale" } }, { status: 400 })
        : fetch(url, init),
    );
    const { session } = await connectTo({ transport });
    const error = await rejectionOf(session.complete("hello"), ClientError);
    expect([error.kind, error.code]).toEqual(["transport", "REQUEST_STALE"]);
    expect(error.message).toContain("(REQUEST_STALE: its timestamp outside the enclave's window of ±5 min)");
  });
});
