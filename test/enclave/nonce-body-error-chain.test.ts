/**
 * A malformed nonce question (/attestation/challenge, /audit/checkpoint) is refused with an error
 * whose whole chain (message and causes) quotes none of the body: JSON.parse's message would quote
 * it (the asker's nonce, or whatever the host sent), so it is not kept as a cause.
 */
import { afterEach, describe, expect, it } from "vitest";
import { EnclaveError } from "../../enclave/errors.ts";
import { listen, type RunningServer } from "../../enclave/http.ts";
import { createEnclaveApp } from "../../enclave/server.ts";
import { bootWith, ScriptedEngine } from "./helpers.ts";

const servers: RunningServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

/** Every message and cause down the chain, as text. */
function chainText(error: unknown): string {
  const parts: string[] = [];
  let at: unknown = error;
  for (let depth = 0; at !== undefined && depth < 10; depth++) {
    parts.push(at instanceof Error ? `${at.name}: ${at.message}` : String(at));
    at = at instanceof Error ? at.cause : undefined;
  }
  return parts.join("\n");
}

/** Serves the enclave's app, keeping each error its routes throw. */
async function serveCapturing(): Promise<{ url: string; errors: unknown[] }> {
  const app = createEnclaveApp(await bootWith(new ScriptedEngine(() => [])));
  const errors: unknown[] = [];
  app.onError((error, c) => {
    errors.push(error);
    return c.json({ error: { code: error instanceof EnclaveError ? error.code : "INTERNAL" } }, 400);
  });
  const server = await listen(app.fetch, "127.0.0.1", 0);
  servers.push(server);
  return { url: server.url, errors };
}

const SECRET = "c2VjcmV0LW5vbmNlLWJ5dGVzLXRoYXQtbXVzdC1ub3QtbGVhaw";
const SHAPE = '{"nonce": base64url}';
const MALFORMED = [
  `{"nonce": "${SECRET}"`, // cut short
  `{"nonce": "${SECRET}"}trailing${SECRET}`,
  `{nonce: '${SECRET}'}`,
  `${SECRET}`,
];

describe("a malformed nonce question's error", () => {
  for (const [path, code] of [
    ["/attestation/challenge", "CHALLENGE_MALFORMED"],
    ["/audit/checkpoint", "AUDIT_CHECKPOINT_MALFORMED"],
  ] as const) {
    it(`${path}: quotes none of a body that is not JSON, message or causes`, async () => {
      const { url, errors } = await serveCapturing();
      for (const body of MALFORMED) {
        const response = await fetch(`${url}${path}`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
        });
        expect(response.status).toBe(400);
        expect(errors).toHaveLength(1);
        const error = errors.splice(0)[0];
        expect(error).toBeInstanceOf(EnclaveError);
        expect((error as EnclaveError).code).toBe(code);
        const text = chainText(error);
        // No run of 6 characters of the body is in the chain, but for runs of the shape the message
        // names ({"nonce": base64url}).
        for (let i = 0; i + 6 <= body.length; i++) {
          const run = body.slice(i, i + 6);
          if (!SHAPE.includes(run)) expect(text).not.toContain(run);
        }
      }
    });
  }

  it("names what was found instead, by its kind and a string by its length, never quoting it", async () => {
    const { url, errors } = await serveCapturing();
    const cases: [body: string, found: string][] = [
      ["", "an empty body"],
      [`{"nonce": "${SECRET}"`, "no JSON"],
      [`["${SECRET}"]`, "an array"],
      ["null", "null"],
      ["42", "a number"],
      [`{"n": "${SECRET}"}`, "an object without nonce"],
      ['{"nonce": 42}', "a number at nonce"],
      ['{"nonce": null}', "null at nonce"],
      [`{"nonce": ["${SECRET}"]}`, "an array at nonce"],
      [`{"nonce": "${SECRET}!"}`, `a non-base64url string of ${SECRET.length + 1} characters at nonce`],
      ['{"nonce": "A"}', "a non-base64url string of 1 character at nonce"],
    ];
    for (const [body, found] of cases) {
      const response = await fetch(`${url}/audit/checkpoint`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      expect([body, response.status]).toEqual([body, 400]);
      const error = errors.splice(0)[0] as EnclaveError;
      expect([body, error.code, error.message]).toEqual([
        body,
        "AUDIT_CHECKPOINT_MALFORMED",
        `audit checkpoint: expected JSON ${SHAPE}, found ${found}`,
      ]);
    }
  });

  it("takes a nonce only in base64url's one spelling: padding, white space, unused bits set are refused", async () => {
    const { url, errors } = await serveCapturing();
    // 16 bytes are 22 characters; the last carries 4 unused bits. jose's decoder takes each of these.
    const canonical = Buffer.alloc(16, 7).toString("base64url");
    const lastSet = `${canonical.slice(0, -1)}${String.fromCharCode(canonical.charCodeAt(21) + 1)}`;
    expect(Buffer.from(lastSet, "base64url")).toEqual(Buffer.alloc(16, 7));
    const post = (path: string, nonce: string) =>
      fetch(`${url}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ nonce }),
      });
    for (const [path, code, what] of [
      ["/attestation/challenge", "CHALLENGE_MALFORMED", "challenge"],
      ["/audit/checkpoint", "AUDIT_CHECKPOINT_MALFORMED", "audit checkpoint"],
    ] as const) {
      expect([path, (await post(path, canonical)).status]).toEqual([path, 200]);
      for (const nonce of [`${canonical}==`, ` ${canonical}`, `${canonical}\n`, lastSet]) {
        const response = await post(path, nonce);
        expect([path, nonce, response.status]).toEqual([path, nonce, 400]);
        const error = errors.splice(0)[0] as EnclaveError;
        expect([path, nonce, error.code, error.message]).toEqual([
          path,
          nonce,
          code,
          `${what}: expected JSON ${SHAPE}, found a non-base64url string of ${nonce.length} characters at nonce`,
        ]);
        // Nothing of the nonce in the message or its causes.
        expect(chainText(error)).not.toContain(canonical.slice(0, 6));
      }
    }
    expect(errors).toEqual([]);
  });

  it("keeps the UTF-8 decoder's error as cause: it quotes none of the body", async () => {
    const { url, errors } = await serveCapturing();
    const body = new Uint8Array([...new TextEncoder().encode(`{"nonce": "${SECRET}`), 0xff, 0x22, 0x7d]);
    const response = await fetch(`${url}/attestation/challenge`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    expect(response.status).toBe(400);
    const error = errors[0] as EnclaveError;
    expect([error.code, error.message]).toEqual([
      "CHALLENGE_MALFORMED",
      `challenge: expected JSON ${SHAPE}, found a body that is not UTF-8`,
    ]);
    expect(error.cause).toBeInstanceOf(TypeError);
    expect(chainText(error)).not.toContain(SECRET.slice(0, 6));
  });
});
