/**
 * Whom every message about an error response names as its speaker: "the server at that URL" until
 * a Cloister host answered there (an enclave verified through it), the host after; and what an
 * envelope refusal or an unreachable enclave is said to be: the speaker's report, never a fact.
 * A tiny loopback server answers as a wrong --url would, then (after a verified connect) as a host.
 */
import { afterEach, describe, expect, it } from "vitest";
import { ClientError } from "../../client/errors.ts";
import { connect } from "../../client/sdk.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { closeServers, devPolicy, serve, serveDeployment, serveInFront } from "./helpers.ts";

const refusal = (status: number, code: string, message: string) =>
  Response.json({ error: { code, message } }, { status });

/** What each case answers, and the message it gives, `who` naming the speaker. */
const CASES: [string, () => Response, (who: string, at: string) => string][] = [
  ["400", () => refusal(400, "BAD_REQUEST", "no"), (who, at) => `${at}: HTTP 400 BAD_REQUEST: ${who} said: "no"`],
  ["405", () => refusal(405, "METHOD", "no"), (who, at) => `${at}: HTTP 405 METHOD: ${who} said: "no"`],
  ["500", () => refusal(500, "INTERNAL", "no"), (who, at) => `${at}: HTTP 500 INTERNAL: ${who} said: "no"`],
  [
    "ENCLAVE_UNREACHABLE",
    () => refusal(502, "ENCLAVE_UNREACHABLE", "no"),
    (who, at) =>
      `${at}: HTTP 502: ${who} reports that it cannot reach the enclave: ${who} said: "no"; retry once the enclave is back (running the host yourself: is the enclave running, and does the host's --enclave-url name it? The host's log says what it tried)`,
  ],
  [
    "DECRYPTION_FAILED",
    () => refusal(400, "DECRYPTION_FAILED", "no"),
    (who, at) =>
      `${at}: HTTP 400: ${who} reports that the enclave refused the sealed request: DECRYPTION_FAILED: ${who} said: "no"`,
  ],
  [
    "redirect",
    () => new Response(null, { status: 307, headers: { location: "http://127.0.0.1:1/elsewhere" } }),
    (who, at) =>
      `${at}: ${who} answered with a redirect (HTTP 307), which the SDK does not follow: give the address it redirects to`,
  ],
];

describe("the speaker of an error response", () => {
  afterEach(closeServers);

  it("before any enclave verified through the URL, every answer is the server at that URL's, not a host's", async () => {
    const policy = await devPolicy();
    for (const [name, answer, expected] of CASES) {
      const url = await serve(answer);
      const error = await rejectionOf(connect({ url, policy, apiKey: "ck_test" }), ClientError);
      expect(error.message, name).toBe(expected("the server at that URL", `${url}/v1/attestation`));
      expect(error.message, name).not.toMatch(/\bhost (said|reports|answered)\b/);
    }
  });

  it("after a verified connect, the same answers on a sealed request are the host's", async () => {
    const deployment = await serveDeployment();
    let answer: (() => Response) | undefined;
    const url = await serveInFront(deployment.url, (request) =>
      answer !== undefined && new URL(request.url).pathname === "/v1/sealed" ? answer() : undefined,
    );
    const session = await connect({ url, policy: await devPolicy(), apiKey: "ck_test" });
    for (const [name, make, expected] of CASES) {
      answer = make;
      const error = await rejectionOf(session.complete("hello"), ClientError);
      expect(error.message, name).toBe(expected("host", `${url}/v1/sealed`));
    }
  });
});
