/**
 * Whom the SDK names for a refusal of the key or a 404 on the attestation route: "the server at
 * that URL" until a Cloister host has answered (an enclave verified through it), the host after.
 * A 2xx alone shows nothing: any web server at a wrong --url answers one.
 */
import { afterEach, describe, expect, it } from "vitest";
import { ClientError } from "../../client/errors.ts";
import { connect } from "../../client/sdk.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { closeServers, devPolicy, serve, serveDeployment, serveInFront } from "./helpers.ts";

const HINT = "; is url (--url) the host's base URL";

describe("the speaker of a refusal before and after a Cloister host answered", () => {
  afterEach(closeServers);

  it("a server that answers the attestation route with a 2xx, then refuses the key, is not called the host", async () => {
    // Not a Cloister host: a JSON answer of the right outline, then a 401 on the challenge.
    const url = await serve((request: Request) =>
      new URL(request.url).pathname === "/v1/attestation"
        ? Response.json({ document: "not an attestation document", collateral: null })
        : Response.json({ error: { code: "UNAUTHENTICATED", message: "who are you" } }, { status: 401 }),
    );
    const error = await rejectionOf(connect({ url, policy: await devPolicy(), apiKey: "ck_test" }), ClientError);
    expect(error).toMatchObject({ kind: "configuration", code: "UNAUTHENTICATED", status: 401, origin: "host" });
    expect(error.message).toBe(
      `${url}/v1/attestation/challenge: HTTP 401: the API key was refused: the server at that URL said: "who are you"` +
        "; give the key the host's operator issued (cloister up writes its key to .cloister/api-key)",
    );
  });

  it("a re-verification's 404 after a verified connect is the host's, with no hint about --url", async () => {
    const deployment = await serveDeployment();
    let attestations = 0;
    const url = await serveInFront(deployment.url, (request) =>
      new URL(request.url).pathname === "/v1/attestation" && attestations++ > 0
        ? Response.json({ error: { code: "NOT_FOUND", message: "no enclave" } }, { status: 404 })
        : undefined,
    );
    const session = await connect({ url, policy: await devPolicy(), apiKey: "ck_test", reattestAfterMs: 1 });
    await new Promise((resolve) => setTimeout(resolve, 5));
    const error = await rejectionOf(session.complete("hello"), ClientError);
    expect(error).toMatchObject({ code: "NOT_FOUND", status: 404, origin: "host" });
    expect(error.message).toBe(`${url}/v1/attestation: HTTP 404 NOT_FOUND: host said: "no enclave"`);
    expect(error.message).not.toContain(HINT);
  });
});
