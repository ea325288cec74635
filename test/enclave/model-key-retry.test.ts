/**
 * The boot's key request (enclave/model-key.ts) when the broker refuses the challenge the boot
 * answered (KBS_CHALLENGE_UNKNOWN): a broker that restarted between the challenge and the release
 * is asked once more with a fresh challenge; refused again, the boot stops with the broker's words
 * and what to do.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import nacl from "tweetnacl";
import { afterEach, describe, expect, it } from "vitest";
import { wrapModelKey } from "../../attestation/kbs/protocol.ts";
import { requestModelKey } from "../../enclave/model-key.ts";
import { modelKeyRequest } from "../helpers/model-key-request.ts";

const servers: Server[] = [];

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

const KEY_ID = "tiny-v1";
const DOCUMENT_DIGEST = "0f".repeat(32);
/** The words the broker refuses a challenge with (attestation/kbs/broker.ts #spend). */
const CHALLENGE_REFUSED = "challenge: not one this broker issued, already used, or expired; ask for a new one";

/**
 * A loopback broker that keeps its challenges as the real one does (a fresh random one each time,
 * each spent by the release that names it) and forgets every one it issued when it "restarts":
 * `restartsBeforeRelease(n)` says whether it restarts just before it reads the n-th release (from 1).
 */
async function restartingBroker(restartsBeforeRelease: (release: number) => boolean, sealingPublicKey: Uint8Array) {
  const key = nacl.randomBytes(32);
  let issued = new Set<string>();
  const asked: string[] = [];
  const challenges: string[] = [];
  const released: string[] = [];
  const server = createServer(async (incoming, response) => {
    asked.push(incoming.url ?? "");
    let text = "";
    for await (const chunk of incoming) text += chunk;
    const answer = (status: number, body: unknown) =>
      response.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
    if (incoming.url === "/v1/kbs/challenge") {
      const challenge = Buffer.from(nacl.randomBytes(32)).toString("base64url");
      issued.add(challenge);
      challenges.push(challenge);
      answer(200, { challenge });
      return;
    }
    const body = JSON.parse(text) as { challenge: string };
    released.push(body.challenge);
    if (restartsBeforeRelease(released.length)) issued = new Set();
    if (!issued.delete(body.challenge)) {
      answer(400, { error: { code: "KBS_CHALLENGE_UNKNOWN", message: CHALLENGE_REFUSED } });
      return;
    }
    answer(200, {
      wrapped: wrapModelKey({
        keyId: KEY_ID,
        key,
        enclaveSealingPublicKey: sealingPublicKey,
        challenge: Buffer.from(body.challenge, "base64url"),
        documentDigest: DOCUMENT_DIGEST,
      }),
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, key, asked, challenges, released };
}

/** A boot's key request against `url`: the challenges it answered, and what it was told of each retry. */
function boot(url: string, sealingSecretKey: Uint8Array) {
  const answered: string[] = [];
  const retries: string[] = [];
  const result = requestModelKey(
    modelKeyRequest(url, {
      keyId: KEY_ID,
      documentDigest: DOCUMENT_DIGEST,
      answer: async (nonce) => {
        answered.push(Buffer.from(nonce).toString("base64url"));
        return "answer";
      },
      sealingSecretKey,
      onRetry: (message) => retries.push(message),
    }),
  );
  return { result, answered, retries };
}

describe("requestModelKey on a refused challenge (KBS_CHALLENGE_UNKNOWN)", () => {
  it("asks once more with a fresh challenge when the broker restarted between the challenge and the release, and gets the key", async () => {
    const sealing = nacl.box.keyPair();
    const broker = await restartingBroker((release) => release === 1, sealing.publicKey);
    const { result, answered, retries } = boot(broker.url, sealing.secretKey);
    expect(Buffer.from(await result)).toEqual(Buffer.from(broker.key));

    expect(broker.asked).toEqual(["/v1/kbs/challenge", "/v1/kbs/release", "/v1/kbs/challenge", "/v1/kbs/release"]);
    // The second release answered the second, fresh challenge, not the refused one again.
    expect(broker.challenges).toHaveLength(2);
    expect(broker.challenges[1]).not.toBe(broker.challenges[0]);
    expect(answered).toEqual(broker.challenges);
    expect(broker.released).toEqual(broker.challenges);
    // Told once, in the broker's words, and without the challenges (nonces) themselves.
    expect(retries).toEqual([
      `boot: key broker refused key "${KEY_ID}" (HTTP 400 KBS_CHALLENGE_UNKNOWN): ${CHALLENGE_REFUSED}; ` +
        "asking once more, with a fresh challenge",
    ]);
  });

  it("stops with BOOT_KBS_REFUSED and what to do when the fresh challenge is refused too, asking no third time", async () => {
    const sealing = nacl.box.keyPair();
    // Restarts before every release: as several brokers behind one --kbs-url would refuse.
    const broker = await restartingBroker(() => true, sealing.publicKey);
    const { result, answered, retries } = boot(broker.url, sealing.secretKey);
    const error = await result.then(
      () => null,
      (e: unknown) => e as { code: string; message: string },
    );
    expect(error).toMatchObject({
      code: "BOOT_KBS_REFUSED",
      message:
        `boot: key broker refused key "${KEY_ID}" (HTTP 400 KBS_CHALLENGE_UNKNOWN): ${CHALLENGE_REFUSED}; ` +
        "this boot asked twice, each time with a fresh challenge, and the broker refused both as expired (60 s), " +
        "already used, or not its own: several brokers answer at --kbs-url (each request may reach another), or " +
        "the broker restarts between requests: point --kbs-url at one broker, then start the enclave again " +
        "(its unit's Restart= does so)",
    });
    expect(broker.asked).toEqual(["/v1/kbs/challenge", "/v1/kbs/release", "/v1/kbs/challenge", "/v1/kbs/release"]);
    expect(answered).toEqual(broker.challenges);
    expect(retries).toHaveLength(1);
    for (const challenge of broker.challenges) {
      expect(error?.message).not.toContain(challenge);
      expect(retries[0]).not.toContain(challenge);
    }
  });
});
