/**
 * A release request that names a member twice in one object is refused as malformed (400
 * KBS_REQUEST_MALFORMED, naming the member's path) before its challenge is looked at: JSON.parse
 * would use the last `challenge` (or `keyId`, or collateral member) while anything else reading the
 * body (a proxy, a log, a reviewer of a capture) sees the first, as the proxy and every file the
 * project trusts refuse such text (attestation/json-text.ts).
 */
import { describe, expect, it } from "vitest";
import { CLIENT_LIMITS, KeyBroker } from "../../attestation/kbs/broker.ts";
import { createBrokerApp, type ReleaseLogEntry } from "../../attestation/kbs/server.ts";

function setUp() {
  const kbs = new KeyBroker([], { clientLimits: CLIENT_LIMITS });
  const lines: ReleaseLogEntry[] = [];
  const app = createBrokerApp(kbs, (entry) => {
    if (entry.event !== "release") throw new Error(`unexpected log line: ${JSON.stringify(entry)}`);
    lines.push(entry);
  });
  const post = async (body: string) => {
    const answer = await app.request("/v1/kbs/release", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    return { status: answer.status, body: (await answer.json()) as { error?: { code: string; message: string } } };
  };
  return { kbs, lines, post };
}

describe("a release request naming a member twice", () => {
  it("is refused as malformed, naming the member, and spends neither challenge", async () => {
    const { kbs, lines, post } = setUp();
    const first = kbs.challenge().challenge;
    const second = kbs.challenge().challenge;
    const refused = await post(
      `{"keyId":"tiny-v1","document":"d","challenge":${JSON.stringify(first)},"answer":"a","challenge":${JSON.stringify(second)}}`,
    );
    expect(refused.status).toBe(400);
    expect(refused.body.error?.code).toBe("KBS_REQUEST_MALFORMED");
    expect(refused.body.error?.message).toMatch(/^release request: challenge appears twice in one object/);
    expect(lines).toEqual([
      expect.objectContaining({ outcome: "refused", code: "KBS_REQUEST_MALFORMED", keyId: null }),
    ]);
    // Neither was spent: each is still looked at (this broker holds no key, so 404, not KBS_CHALLENGE_UNKNOWN).
    for (const challenge of [first, second]) {
      const later = await post(JSON.stringify({ keyId: "tiny-v1", document: "d", challenge, answer: "a" }));
      expect(later.body.error?.code).toBe("KBS_KEY_UNKNOWN");
    }
  });

  it("is refused at any depth, naming the member's path (collateral.tdx.crls)", async () => {
    const { kbs, post } = setUp();
    const { challenge } = kbs.challenge();
    const refused = await post(
      `{"keyId":"tiny-v1","document":"d","challenge":${JSON.stringify(challenge)},"answer":"a","collateral":{"tdx":{"crls":[],"crls":[]}}}`,
    );
    expect(refused.status).toBe(400);
    expect(refused.body.error?.code).toBe("KBS_REQUEST_MALFORMED");
    expect(refused.body.error?.message).toMatch(/^release request: collateral\.tdx\.crls appears twice in one object/);
  });

  it("still tells a body that is not JSON from one naming a member twice", async () => {
    const { post } = setUp();
    const refused = await post('{"keyId":');
    expect(refused.status).toBe(400);
    expect(refused.body.error).toEqual({ code: "KBS_REQUEST_MALFORMED", message: "release request: body is not JSON" });
  });
});
