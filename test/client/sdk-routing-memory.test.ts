/**
 * What the SDK keeps of a host's attestation document after a session that fetched it is gone: none
 * of it. A document is up to 4 MiB of unverified host text; the routing key id read from it (where
 * to send the nonce) is all a re-attestation reuses. Looked for in a heap snapshot, by a marker
 * that exists as a string only inside the document (the test keeps it as bytes).
 */
import { randomBytes } from "node:crypto";
import { getHeapSnapshot } from "node:v8";
import { describe, expect, it } from "vitest";
import { ClientError } from "../../client/errors.ts";
import { connect } from "../../client/sdk.ts";
import type { Transport } from "../../client/transport.ts";
import { devPolicy } from "./helpers.ts";

/**
 * Which of `needles` (given as bytes: searching adds no such string before the snapshot) some string
 * in a heap snapshot taken now contains, as base64url.
 */
async function heldInHeap(...needles: Uint8Array[]): Promise<boolean[]> {
  const snapshot = getHeapSnapshot();
  const wanted = needles.map((needle) => Buffer.from(Buffer.from(needle).toString("base64url")));
  const overlap = Math.max(...wanted.map((w) => w.length));
  const found = wanted.map(() => false);
  let tail = Buffer.alloc(0);
  for await (const chunk of snapshot) {
    const window = Buffer.concat([tail, chunk as Buffer]);
    for (const [i, w] of wanted.entries()) found[i] ||= window.includes(w);
    tail = window.subarray(Math.max(0, window.length - overlap));
  }
  return found;
}

/** A host whose attestation answer is a document starting with `marker` (base64url) and whose nonce route fails. */
function hostServing(marker: Uint8Array): Transport {
  const answer = Buffer.from(
    JSON.stringify({
      document: `${Buffer.from(marker).toString("base64url")}.${"e30".repeat(20_000)}.${"A".repeat(86)}`,
      collateral: null,
    }),
  );
  // Nothing above is kept as a string: only the answer's bytes, turned into a new string per call.
  return async (url) => {
    const attestation = new URL(url).pathname === "/v1/attestation";
    const text = attestation ? answer.toString() : JSON.stringify({ code: "INTERNAL", message: "m" });
    return {
      status: attestation ? 200 : 500,
      header: () => null,
      body: (async function* () {})(),
      text: async () => text,
    };
  };
}

describe("the SDK keeps no host's attestation document after its session", () => {
  it("holds none once connect() failed after fetching it (the routing id is all that is reused)", async () => {
    const marker = randomBytes(18);
    const policy = await devPolicy();
    const transport = hostServing(marker);
    const error = await connect({ url: "http://host.test", policy, apiKey: "ck_test", transport }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ClientError);
    expect((error as ClientError).kind).toBe("transport");
    // A string still held is found (so the search can fail); the document is not.
    const held = randomBytes(18);
    const control = `${Buffer.from(held).toString("base64url")}.held`;
    expect(await heldInHeap(held, marker)).toEqual([true, false]);
    expect(control).toMatch(/\.held$/);
  });
});
