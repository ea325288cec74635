/**
 * The enclave's side of the key broker protocol (enclave/model-key.ts) against answers a real
 * broker never sends: the broker's URL is not trusted, so nothing it sends is read past a bound.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it, onTestFinished, vi } from "vitest";
import type { AttestationCollateral } from "../../attestation/collateral.ts";
import { MAX_KBS_RESPONSE_BYTES, requestModelKey } from "../../enclave/model-key.ts";
import { type HeldTimeout, holdTimeouts } from "../helpers/held-timers.ts";
import { modelKeyRequest } from "../helpers/model-key-request.ts";
import { refusedPort } from "../helpers/refused-port.ts";

const servers: Server[] = [];

/** The next step an unreachable broker's refusal names (the boot does not ask again). */
const UNREACHABLE_STEP =
  "; check that the key broker runs at that URL (--kbs-url) and that this enclave can reach it; this boot does " +
  "not ask again: start the broker, then start the enclave again (its unit's Restart= does so)";

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

/** A loopback "broker" whose every answer is `total` bytes of one JSON string, sent in 16 KiB chunks. */
async function endlessBroker(total: number): Promise<{ url: string; written: () => number }> {
  let written = 0;
  const server = createServer((_request, response) => {
    response.writeHead(200, { "content-type": "application/json" });
    const chunk = Buffer.alloc(16 * 1024, "a");
    let sent = 0;
    const more = () => {
      // Bounded: at most `total` bytes, and it stops once the reader has gone.
      while (sent < total && !response.destroyed) {
        sent += chunk.length;
        written += chunk.length;
        if (!response.write(sent === chunk.length ? Buffer.concat([Buffer.from('"'), chunk.subarray(1)]) : chunk)) {
          response.once("drain", more);
          return;
        }
      }
      if (!response.destroyed) response.end('"');
    };
    more();
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, written: () => written };
}

const request = (
  kbsUrl: string,
  options: {
    retryForMs?: number;
    onRetry?: (message: string) => void;
    collateral?: AttestationCollateral;
    timeoutMs?: number;
    signal?: AbortSignal;
    answer?: (nonce: Uint8Array) => Promise<string>;
  } = {},
) => requestModelKey(modelKeyRequest(kbsUrl, options));

/** A loopback "broker" answering each request with the next of `answers` (status, code, Retry-After). */
async function scriptedBroker(
  answers: readonly { status: number; body: unknown; retryAfter?: string }[],
): Promise<{ url: string; asked: string[]; bodies: unknown[] }> {
  const asked: string[] = [];
  const bodies: unknown[] = [];
  const server = createServer(async (incoming, response) => {
    asked.push(incoming.url ?? "");
    const answer = answers[asked.length - 1] ?? { status: 500, body: { error: { code: "SCRIPT_ENDED" } } };
    let text = "";
    for await (const chunk of incoming) text += chunk;
    bodies.push(JSON.parse(text));
    response.writeHead(answer.status, {
      "content-type": "application/json",
      ...(answer.retryAfter === undefined ? {} : { "retry-after": answer.retryAfter }),
    });
    response.end(JSON.stringify(answer.body));
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, asked, bodies };
}

const refusal = (status: number, code: string, retryAfter?: string) => ({
  status,
  body: { error: { code, message: "come back later" } },
  ...(retryAfter === undefined ? {} : { retryAfter }),
});

/**
 * An onRetry that records each message in `retries` and holds the wait a busy answer sets right
 * after it, in the same turn (holdTimeouts), firing it once set: no real time passes. A refused
 * challenge's onRetry ("asking once more") sets no timer, and holds none. `held`: the waits held.
 */
function heldBusyWaits(retries: string[]): { onRetry: (message: string) => void; held: readonly HeldTimeout[] } {
  let holdNext = false;
  const timers = holdTimeouts(() => {
    const hold = holdNext;
    holdNext = false;
    return hold;
  });
  onTestFinished(() => timers.restore());
  const onRetry = (message: string) => {
    retries.push(message);
    if (!/; asking again in \d+ ms$/.test(message)) return;
    holdNext = true;
    const index = timers.held.length;
    setImmediate(() => timers.held[index]?.fire());
  };
  return { onRetry, held: timers.held };
}

describe("requestModelKey", () => {
  it("reads at most 64 KiB of a broker's answer: past that it stops reading and names the limit", async () => {
    const total = 64 * 1024 * 1024;
    const broker = await endlessBroker(total);
    const error = await request(broker.url).then(
      () => null,
      (e: unknown) => e as { code: string; message: string },
    );
    expect(error?.code).toBe("BOOT_KBS_BAD_RESPONSE");
    expect(error?.message).toBe(
      `boot: key broker /v1/kbs/challenge: HTTP 200, expected at most ${MAX_KBS_RESPONSE_BYTES} bytes, found more`,
    );
    // The rest was never read: the server could write no more than socket buffers hold.
    expect(broker.written()).toBeLessThan(total / 4);
  });

  it("asks a busy or rate-limiting broker again after its Retry-After, and stops at any other refusal", async () => {
    const challenge = { status: 200, body: { challenge: Buffer.alloc(32, 1).toString("base64url") } };
    const broker = await scriptedBroker([
      refusal(503, "KBS_BUSY", "1"),
      refusal(429, "KBS_RATE_LIMITED", "1"),
      challenge,
      refusal(404, "KBS_KEY_UNKNOWN"),
    ]);
    const retries: string[] = [];
    // Each wait is the timer set right after onRetry told of it: held, and fired by the test in the
    // order set (no real time passes), with the requests started (fetch calls) when it was set and
    // when it fired.
    const fetched = vi.spyOn(globalThis, "fetch");
    onTestFinished(() => fetched.mockRestore());
    const waits: { ms: number | undefined; askedBefore: number; askedAtFire: number }[] = [];
    let holdNext = false;
    let retried = (): void => {};
    const nextRetry = () =>
      new Promise<false>((resolve) => {
        retried = () => resolve(false);
      });
    const timers = holdTimeouts(() => {
      const hold = holdNext;
      holdNext = false;
      return hold;
    });
    onTestFinished(() => timers.restore());
    const onRetry = (message: string) => {
      retries.push(message);
      holdNext = true;
      retried();
    };
    let retry = nextRetry();
    const outcome = request(broker.url, { onRetry }).then(
      () => null,
      (error: unknown) => error,
    );
    // Bounded: the broker's script has two busy answers; a third wait would be recorded and fail below.
    for (let turn = 0; turn < 4; turn++) {
      // onRetry runs just before the wait's setTimeout, in the same turn: once the test resumes, it is set.
      const ended = await Promise.race([retry, outcome.then(() => true)]);
      if (ended) break;
      retry = nextRetry();
      const timer = timers.held[waits.length];
      const wait = { ms: timer?.ms, askedBefore: fetched.mock.calls.length, askedAtFire: -1 };
      waits.push(wait);
      // A turn of the event loop first: only promises lie between onRetry and the next request's
      // fetch call, so a request that did not wait for the timer has been started by now.
      await new Promise((resolve) => setImmediate(resolve));
      wait.askedAtFire = fetched.mock.calls.length;
      timer?.fire();
    }
    expect(await outcome).toMatchObject({
      code: "BOOT_KBS_REFUSED",
      message: expect.stringContaining("(HTTP 404 KBS_KEY_UNKNOWN)"),
    });
    // Asked again only once its Retry-After (1 s) was waited out: each wait asked for 1000 ms, and
    // no request was started between its setting and its firing.
    expect(waits).toEqual([
      { ms: 1000, askedBefore: 1, askedAtFire: 1 },
      { ms: 1000, askedBefore: 2, askedAtFire: 2 },
    ]);
    expect(timers.held.map((timer) => ({ fired: timer.fired, cleared: timer.cleared }))).toEqual([
      { fired: true, cleared: false },
      { fired: true, cleared: false },
    ]);
    expect(broker.asked).toEqual(["/v1/kbs/challenge", "/v1/kbs/challenge", "/v1/kbs/challenge", "/v1/kbs/release"]);
    expect(retries).toEqual([
      expect.stringMatching(/\(HTTP 503 KBS_BUSY\).*; asking again in 1000 ms$/),
      expect.stringMatching(/\(HTTP 429 KBS_RATE_LIMITED\).*; asking again in 1000 ms$/),
    ]);
  });

  // test/enclave/model-key-retry.test.ts has a refused challenge alone.
  it("asks for a fresh challenge once per boot, not once per busy wait: refused, busy, refused again stops", async () => {
    const challenge = { status: 200, body: { challenge: Buffer.alloc(32, 1).toString("base64url") } };
    const refused = refusal(400, "KBS_CHALLENGE_UNKNOWN");
    const broker = await scriptedBroker([
      challenge,
      refused,
      challenge,
      refusal(503, "KBS_BUSY", "1"),
      challenge,
      refused,
      challenge,
      refused,
    ]);
    const retries: string[] = [];
    const waits = heldBusyWaits(retries);
    await expect(request(broker.url, { onRetry: waits.onRetry })).rejects.toMatchObject({
      code: "BOOT_KBS_REFUSED",
      message: expect.stringContaining("this boot asked twice, each time with a fresh challenge"),
    });
    // One wait, the busy answer's (held and fired: no real time passed); the refusals set none.
    expect(waits.held.map(({ ms, fired }) => ({ ms, fired }))).toEqual([{ ms: 1000, fired: true }]);
    // The second refusal stops the boot: no third release after the busy wait came between them.
    expect(broker.asked).toEqual([
      "/v1/kbs/challenge",
      "/v1/kbs/release",
      "/v1/kbs/challenge",
      "/v1/kbs/release",
      "/v1/kbs/challenge",
      "/v1/kbs/release",
    ]);
    expect(retries).toEqual([
      expect.stringContaining(
        "(HTTP 400 KBS_CHALLENGE_UNKNOWN): come back later; asking once more, with a fresh challenge",
      ),
      expect.stringContaining("(HTTP 503 KBS_BUSY): come back later; asking again in 1000 ms"),
    ]);
  });

  it("retries only KBS_BUSY on 503, waits at least 500 ms, and refuses a challenge that is not 32 bytes", async () => {
    const down = await scriptedBroker([refusal(503, "KBS_DOWN", "1")]);
    await expect(request(down.url)).rejects.toMatchObject({ code: "BOOT_KBS_FAILED" });
    expect(down.asked).toHaveLength(1);

    const challenge = (bytes: number) => ({
      status: 200,
      body: { challenge: Buffer.alloc(bytes, 1).toString("base64url") },
    });
    const retries: string[] = [];
    const waits = heldBusyWaits(retries);
    // Trailing slashes on the URL are dropped: the broker is asked its own paths.
    const broker = await scriptedBroker([refusal(503, "KBS_BUSY", "0.1"), challenge(31), challenge(33)]);
    for (const found of [31, 33]) {
      await expect(request(`${broker.url}//`, { onRetry: waits.onRetry })).rejects.toMatchObject({
        code: "BOOT_KBS_BAD_RESPONSE",
        message: `boot: key broker challenge: expected 32 bytes, found ${found}`,
      });
    }
    expect(retries).toEqual([expect.stringMatching(/; asking again in 500 ms$/)]);
    // The wait set for it asked 500 ms (Retry-After 0.1 s raised to the least), held and fired.
    expect(waits.held.map(({ ms, fired }) => ({ ms, fired }))).toEqual([{ ms: 500, fired: true }]);
    expect(broker.asked).toEqual(["/v1/kbs/challenge", "/v1/kbs/challenge", "/v1/kbs/challenge"]);
  });

  it("reports a fault of the broker (HTTP 5xx other than KBS_BUSY) as BOOT_KBS_FAILED with its code, not as a refusal", async () => {
    const challenge = { status: 200, body: { challenge: Buffer.alloc(32, 1).toString("base64url") } };
    const internal = {
      status: 500,
      body: { error: { code: "INTERNAL", message: "internal error in the key broker; its log has the reason" } },
    };
    const broker = await scriptedBroker([challenge, internal, refusal(502, "UPSTREAM_DOWN")]);
    await expect(request(broker.url)).rejects.toMatchObject({
      code: "BOOT_KBS_FAILED",
      message:
        'boot: key broker failed on key "tiny-v1" (HTTP 500 INTERNAL): internal error in the key broker; its log has the reason',
    });
    // Not asked again: a fault is not a busy broker.
    await expect(request(broker.url)).rejects.toMatchObject({
      code: "BOOT_KBS_FAILED",
      message: expect.stringContaining("(HTTP 502 UPSTREAM_DOWN)"),
    });
    expect(broker.asked).toEqual(["/v1/kbs/challenge", "/v1/kbs/release", "/v1/kbs/challenge"]);
  });

  it("sends the collateral served with the document to the broker, and none when there is none", async () => {
    const challenge = { status: 200, body: { challenge: Buffer.alloc(32, 1).toString("base64url") } };
    const broker = await scriptedBroker([challenge, refusal(403, "KBS_POLICY"), challenge, refusal(403, "KBS_POLICY")]);
    const collateral = { tdx: { tcbInfo: "t" } } as unknown as AttestationCollateral;
    await expect(request(broker.url, { collateral })).rejects.toMatchObject({ code: "BOOT_KBS_REFUSED" });
    await expect(request(broker.url)).rejects.toMatchObject({ code: "BOOT_KBS_REFUSED" });
    const [, withCollateral, , without] = broker.bodies as Record<string, unknown>[];
    expect(withCollateral).toMatchObject({ keyId: "tiny-v1", document: "x.y.z", collateral, answer: "answer" });
    expect(without).not.toHaveProperty("collateral");
  });

  it("names this enclave's public values and the next step after the broker's words when it refuses the key", async () => {
    const challenge = { status: 200, body: { challenge: Buffer.alloc(32, 1).toString("base64url") } };
    const said = "attestation failed at stage appraise (TDX_MRTD_NOT_ALLOWED); the key broker's log has the reason";
    const broker = await scriptedBroker([
      challenge,
      { status: 403, body: { error: { code: "KBS_ATTESTATION_FAILED", message: said } } },
    ]);
    const error = await request(broker.url).then(
      () => null,
      (e: unknown) => e as { code: string; message: string },
    );
    expect(error?.code).toBe("BOOT_KBS_REFUSED");
    expect(error?.message).toBe(
      `boot: key broker refused key "tiny-v1" (HTTP 403 KBS_ATTESTATION_FAILED): ${said}; ` +
        `this enclave: tee sim-tdx, MRTD ${"ab".repeat(48)}, model.sha256 ${"cd".repeat(32)}; ` +
        `compare them with the broker's release policy for key id "tiny-v1"; the broker's log names what it expected`,
    );
    // The challenge (a nonce) and the attested answer are not named.
    expect(error?.message).not.toContain(Buffer.alloc(32, 1).toString("base64url"));
    expect(error?.message).not.toContain("answer");
  });

  it("names after each refusal the next step that fits it: the release policy only when the broker judged this enclave", async () => {
    const challenge = { status: 200, body: { challenge: Buffer.alloc(32, 1).toString("base64url") } };
    const own = `this enclave: tee sim-tdx, MRTD ${"ab".repeat(48)}, model.sha256 ${"cd".repeat(32)}`;
    const policyStep = `${own}; compare them with the broker's release policy for key id "tiny-v1"; the broker's log names what it expected`;
    const restart = "start the enclave again (its unit's Restart= does so)";
    const cases: [status: number, code: string, said: string, step: string][] = [
      [
        403,
        "KBS_KEY_NOT_IN_MANIFEST",
        'manifest model.keyId: expected "tiny-v1" with sealedAtRest true, found "other" (sealedAtRest true)',
        policyStep,
      ],
      [
        404,
        "KBS_KEY_UNKNOWN",
        'keyId: this broker holds no key "tiny-v1"',
        `the broker holds no key "tiny-v1": check the manifest's model.keyId against the --key-id given to cloister kbs keygen, and that the broker's configuration lists that key file (cloister kbs check)`,
      ],
      [
        400,
        "KBS_CHALLENGE_UNKNOWN",
        "challenge: not one this broker issued, already used, or expired; ask for a new one",
        // After the second refusal (the first is asked again: test/enclave/model-key-retry.test.ts).
        `this boot asked twice, each time with a fresh challenge, and the broker refused both as expired (60 s), already used, or not its own: several brokers answer at --kbs-url (each request may reach another), or the broker restarts between requests: point --kbs-url at one broker, then ${restart}`,
      ],
      [
        400,
        "KBS_REQUEST_MALFORMED",
        "release request: answer: expected a string, found undefined",
        "the broker could not take this boot's release request as it is (its words name what): check that the enclave and the broker run the same Cloister version",
      ],
      [
        408,
        "REQUEST_TIMEOUT",
        "request: not received in time",
        `the broker did not receive this boot's request whole (a proxy or the network between them): ${restart}`,
      ],
      [
        403,
        "KBS_ATTESTATION_FAILED",
        "attestation failed at stage nonce (NONCE_STALE); the key broker's log has the reason",
        `this VM's clock and the broker's differ by more than its release policy's freshness.maxClockSkewSeconds: set both by NTP, then ${restart}`,
      ],
      // A code this boot does not know: the broker judged something; the policy is where to look.
      [403, "KBS_SOMETHING_NEW", "refused", policyStep],
    ];
    for (const [status, code, said, step] of cases) {
      const answer = { status, body: { error: { code, message: said } } };
      const broker = await scriptedBroker([challenge, answer, challenge, answer]);
      const error = await request(broker.url).then(
        () => null,
        (e: unknown) => e as { code: string; message: string },
      );
      expect(error, code).toMatchObject({
        code: "BOOT_KBS_REFUSED",
        message: `boot: key broker refused key "tiny-v1" (HTTP ${status} ${code}): ${said}; ${step}`,
      });
    }
    // Refused at the challenge, before any route (a Host off loopback) or by none (a URL that is no
    // broker's): no release is asked for. (fetch sends a request refused with 421 once more.)
    const atChallenge: [status: number, code: string, said: string, step: string][] = [
      [
        421,
        "KBS_HOST_NOT_LOOPBACK",
        "host: expected a loopback name",
        "this broker serves a key released to the simulator to loopback only: give --kbs-url a loopback address (http://127.0.0.1:PORT)",
      ],
      [
        404,
        "NOT_FOUND",
        "no such route",
        "no key broker route there: check that --kbs-url is the URL the broker's /v1/kbs/ routes are under",
      ],
    ];
    for (const [status, code, said, step] of atChallenge) {
      const answer = { status, body: { error: { code, message: said } } };
      const broker = await scriptedBroker([answer, answer]);
      await expect(request(broker.url), code).rejects.toMatchObject({
        code: "BOOT_KBS_REFUSED",
        message: `boot: key broker refused key "tiny-v1" (HTTP ${status} ${code}): ${said}; ${step}`,
      });
      expect(new Set(broker.asked)).toEqual(new Set(["/v1/kbs/challenge"]));
    }
  });

  it("gives up on a busy broker when its Retry-After would pass the retry deadline", async () => {
    const broker = await scriptedBroker([refusal(503, "KBS_BUSY", "5")]);
    await expect(request(broker.url, { retryForMs: 2000 })).rejects.toMatchObject({
      code: "BOOT_KBS_REFUSED",
      message: expect.stringContaining("(HTTP 503 KBS_BUSY)"),
    });
    expect(broker.asked).toHaveLength(1);
  });

  it("reads an answer within the bound as before (a refusal's code and reason)", async () => {
    const server = createServer((_request, response) => {
      response.writeHead(403, { "content-type": "application/json" });
      response.end(JSON.stringify({ error: { code: "KBS_BUSY", message: "x".repeat(MAX_KBS_RESPONSE_BYTES - 100) } }));
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    await expect(request(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)).rejects.toMatchObject({
      code: "BOOT_KBS_REFUSED",
      message: expect.stringContaining("(HTTP 403 KBS_BUSY)"),
    });
  });

  it("follows no redirect: a 302 or 307 to another server is refused as a bad response, and that server is asked nothing", async () => {
    const elsewhere: string[] = [];
    const other = createServer((incoming, response) => {
      elsewhere.push(incoming.url ?? "");
      response.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
    servers.push(other);
    await new Promise<void>((resolve) => other.listen(0, "127.0.0.2", resolve));
    const otherUrl = `http://127.0.0.2:${(other.address() as AddressInfo).port}`;
    for (const status of [302, 307]) {
      const origin = createServer((incoming, response) => {
        response.writeHead(status, { location: `${otherUrl}${incoming.url}?token=not-shown` }).end();
      });
      servers.push(origin);
      await new Promise<void>((resolve) => origin.listen(0, "127.0.0.1", resolve));
      const error = await request(`http://127.0.0.1:${(origin.address() as AddressInfo).port}`).then(
        () => null,
        (e: unknown) => e as { code: string; message: string },
      );
      expect(error?.code).toBe("BOOT_KBS_BAD_RESPONSE");
      expect(error?.message).toBe(
        `boot: key broker /v1/kbs/challenge: expected no redirect, found HTTP ${status} to "${otherUrl}/v1/kbs/challenge?… (the rest not shown)" (not followed)`,
      );
    }
    expect(elsewhere).toEqual([]);
  });

  it("names the step a broker closed the connection at, and that it closed before answering", async () => {
    // A broker that answers the challenge, then drops the connection of the release request.
    const broker = createServer((req, res) => {
      if (req.url === "/v1/kbs/challenge") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ challenge: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }));
        return;
      }
      req.socket.destroy();
    });
    await new Promise<void>((resolve) => broker.listen(0, "127.0.0.1", resolve));
    try {
      const url = `http://127.0.0.1:${(broker.address() as AddressInfo).port}`;
      const error = await request(url).then(
        () => null,
        (e: unknown) => e as { code: string; message: string },
      );
      expect(error?.code).toBe("BOOT_KBS_UNREACHABLE");
      expect(error?.message).toBe(
        `boot: key broker "${url}" /v1/kbs/release: the connection closed before an answer (UND_ERR_SOCKET)${UNREACHABLE_STEP}`,
      );
    } finally {
      await new Promise((resolve) => broker.close(resolve));
    }
  });

  it("names an unreachable broker without its credentials or query", async () => {
    // A port held refused for the test (not a port-0 pick freed, which another process could take).
    const { port, close } = await refusedPort();
    onTestFinished(close);

    const withQuery = await request(`http://127.0.0.1:${port}/kbs?token=secret-token`).then(
      () => null,
      (e: unknown) => e as { code: string; message: string },
    );
    expect(withQuery?.code).toBe("BOOT_KBS_UNREACHABLE");
    expect(withQuery?.message).toBe(
      `boot: key broker "http://127.0.0.1:${port}/kbs?… (the rest not shown)" /v1/kbs/challenge: unreachable (ECONNREFUSED)${UNREACHABLE_STEP}`,
    );

    const withPassword = await request(`http://user:secret-password@127.0.0.1:${port}`).then(
      () => null,
      (e: unknown) => e as { code: string; message: string },
    );
    expect(withPassword?.code).toBe("BOOT_KBS_UNREACHABLE");
    expect(withPassword?.message).not.toContain("secret-password");
    expect(withPassword?.message).toMatch(
      /^boot: key broker a string of \d+ characters with a user\/password-like part/,
    );
  });

  it("stops when its signal aborts (the boot stopped by SIGTERM), with the signal's reason, even while the broker holds its answer", async () => {
    // A broker that takes the challenge request and never answers; no timeout would end it soon.
    let asked!: () => void;
    const askedOnce = new Promise<void>((resolve) => {
      asked = resolve;
    });
    const server = createServer(() => asked());
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const controller = new AbortController();
    const pending = request(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, {
      timeoutMs: 600_000,
      signal: controller.signal,
    }).then(
      () => null,
      (e: unknown) => e,
    );
    await askedOnce;
    controller.abort("SIGTERM");
    expect(await pending).toBe("SIGTERM");
  });

  it("fails with a step's own error that came while a stop was pending, not with the stop's reason", async () => {
    const challenge = { status: 200, body: { challenge: Buffer.alloc(32, 1).toString("base64url") } };
    const broker = await scriptedBroker([challenge]);
    const controller = new AbortController();
    const error = await request(broker.url, {
      signal: controller.signal,
      // The stop arrives, then the step fails on its own (here the boot's answer to the challenge).
      answer: async () => {
        controller.abort("SIGTERM");
        throw new Error("the answer failed (a stand-in)");
      },
    }).catch((e: unknown) => e);
    expect(controller.signal.aborted).toBe(true);
    expect((error as Error).message).toContain("the answer failed (a stand-in)");
  });
});
