/**
 * connect({enclaveKeyId}): an operator verifies one given enclave of a pool (cloister attest /
 * audit checkpoint --enclave). The document is asked for that enclave, and a host that answers with
 * another enclave's document is refused at the attestation stage, before anything else is sent.
 */
import { afterEach, describe, expect, it } from "vitest";
import { toHex } from "../../attestation/bytes.ts";
import { ClientError } from "../../client/errors.ts";
import { connect } from "../../client/sdk.ts";
import { fetchTransport } from "../../client/transport.ts";
import { createEnclaveApp } from "../../enclave/server.ts";
import { enclaveKeyId } from "../../sealed/keys.ts";
import { bootWith, ScriptedEngine } from "../enclave/helpers.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { closeServers, devPolicy, OK, serve } from "./helpers.ts";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await closeServers();
});

/**
 * Two enclaves the dev policy accepts alike, behind a stand-in host that sends every path to
 * `host.target` (A's URL unless changed) and lists each request (path and query) asked of it.
 */
async function twoEnclaves() {
  const enclaves = await Promise.all([0, 1].map(() => bootWith(new ScriptedEngine(() => OK))));
  cleanups.push(...enclaves.map((enclave) => () => enclave.close()));
  const [a, b] = enclaves as [(typeof enclaves)[0], (typeof enclaves)[0]];
  const urls = { a: await serve(createEnclaveApp(a).fetch), b: await serve(createEnclaveApp(b).fetch) };
  const ids = {
    a: toHex(await enclaveKeyId(a.publicKeys.sealing)),
    b: toHex(await enclaveKeyId(b.publicKeys.sealing)),
  };
  const forward = fetchTransport(fetch);
  const host = { target: urls.a, asked: [] as string[] };
  const connectNaming = async (enclaveKeyId?: string) =>
    connect({
      url: "http://host.test",
      policy: await devPolicy(),
      apiKey: "unused",
      ...(enclaveKeyId === undefined ? {} : { enclaveKeyId }),
      transport: (url, request) => {
        const { pathname, search } = new URL(url);
        host.asked.push(`${pathname}${search}`);
        return forward(`${host.target}${pathname.replace(/^\/v1\//, "/")}`, request);
      },
    });
  return { host, urls, ids, connectNaming };
}

describe("connect({enclaveKeyId})", () => {
  it("asks for the named enclave's document, and its nonce question and checkpoint name it", async () => {
    const { host, urls, ids, connectNaming } = await twoEnclaves();
    host.target = urls.b;
    const session = await connectNaming(ids.b);
    expect(toHex(await enclaveKeyId(session.enclave.sealingPublicKey))).toBe(ids.b);
    await session.auditCheckpoint();
    expect(host.asked).toEqual([
      `/v1/attestation?enclave=${ids.b}`,
      `/v1/attestation/challenge?enclave=${ids.b}`,
      `/v1/audit/checkpoint?enclave=${ids.b}`,
    ]);
  });

  it("refuses a host that answers with another enclave's document, before the nonce question or anything else", async () => {
    const { host, ids, connectNaming } = await twoEnclaves();
    // The host serves A whatever is named.
    const error = await rejectionOf(connectNaming(ids.b), ClientError);
    expect(error).toMatchObject({ kind: "attestation", code: "ENCLAVE_KEY_ID_MISMATCH", stage: "document" });
    expect(error.message).toBe(
      `attestation failed at stage document: document's enclave key id (cnf.jwk): expected ${ids.b} ` +
        `(enclaveKeyId), found ${ids.a}: the host answered with another enclave's document`,
    );
    expect(host.asked).toEqual([`/v1/attestation?enclave=${ids.b}`]);
  });

  it("re-verifies the same enclave only: one that answers for it after a restart (another key) is refused", async () => {
    const { host, urls, ids, connectNaming } = await twoEnclaves();
    const session = await connectNaming(ids.a);
    host.target = urls.b;
    host.asked.length = 0;
    const error = await rejectionOf(session.attest(), ClientError);
    expect(error).toMatchObject({ kind: "attestation", code: "ENCLAVE_KEY_ID_MISMATCH" });
    expect(host.asked).toEqual([`/v1/attestation?enclave=${ids.a}`]);
    // The failed verification is not kept: nothing can be sealed to either enclave now.
    expect(session.attested).toBe(false);
  });

  it("refuses a malformed key id as BAD_OPTION before anything is sent", async () => {
    const { host, ids, connectNaming } = await twoEnclaves();
    for (const bad of [ids.a.toUpperCase(), ids.a.slice(2), `${ids.a}00`, ""]) {
      const error = await rejectionOf(connectNaming(bad), ClientError);
      expect(error).toMatchObject({ kind: "configuration", code: "BAD_OPTION", field: "enclaveKeyId" });
      expect(error.message).toMatch(/^enclaveKeyId: expected an enclave key id of 32 lower-case hex digits, found /);
    }
    expect(host.asked).toEqual([]);
  });

  it("without it, verifies whichever enclave the host serves, as before", async () => {
    const { host, urls, ids, connectNaming } = await twoEnclaves();
    host.target = urls.b;
    const session = await connectNaming();
    expect(toHex(await enclaveKeyId(session.enclave.sealingPublicKey))).toBe(ids.b);
    expect(host.asked[0]).toBe("/v1/attestation");
  });
});
