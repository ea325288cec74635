/**
 * A release body the server itself answered (enclave/http.ts bodyRefusal: node could not read it,
 * or did not receive it in time) is refused by the broker with the server's own status, code and
 * message: what the client got. bodyRefusal is stood in for (the server's 408 comes only after its
 * 120 s request timeout), so the broker's own answer, which no client sees, can be looked at.
 */
import { describe, expect, it, vi } from "vitest";
import type { Refusal } from "../../enclave/http.ts";

const timedOut: Refusal = {
  status: 408,
  code: "REQUEST_TIMEOUT",
  message: "request: expected its headers within 20000 ms and all of it within 120000 ms, found it incomplete",
  method: "POST",
  responseBytes: 100,
};

vi.mock("../../enclave/http.ts", async (original) => ({
  ...(await original<typeof import("../../enclave/http.ts")>()),
  bodyRefusal: () => timedOut,
}));

const { CLIENT_LIMITS, KeyBroker } = await import("../../attestation/kbs/broker.ts");
const { createBrokerApp } = await import("../../attestation/kbs/server.ts");

describe("a release body the server answered itself", () => {
  it("is refused with the server's status, code and message, and logged once with them", async () => {
    const logs: unknown[] = [];
    const app = createBrokerApp(new KeyBroker([], { clientLimits: CLIENT_LIMITS }), (e) => logs.push(e));
    // The body's stream fails, as node's does when the server answered it.
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('{"keyId":'));
        controller.error(new Error("aborted"));
      },
    });
    const incoming = { socket: { remoteAddress: "127.0.0.1" } };
    const answer = await app.request(
      "/v1/kbs/release",
      { method: "POST", body, duplex: "half", headers: { "content-type": "application/json" } } as RequestInit,
      { incoming },
    );
    expect(answer.status).toBe(408);
    expect(await answer.json()).toEqual({ error: { code: "REQUEST_TIMEOUT", message: timedOut.message } });
    expect(logs).toEqual([
      expect.objectContaining({
        event: "release",
        outcome: "refused",
        code: "REQUEST_TIMEOUT",
        reason: `${timedOut.message}, answered by the server (the body's stream: Error: aborted)`,
      }),
    ]);
  });
});
