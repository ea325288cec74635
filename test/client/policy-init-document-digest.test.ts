/**
 * `cloister policy init`'s self-check refuses a session whose document is not the one the policy
 * was pinned from. connect() checks the pinned key id first, and one boot signs one document, so a
 * host cannot show another document under that key id without the enclave's signing key: here the
 * test holds that key, as an enclave does, and signs two genuine documents of one simulated SNP
 * enclave (the same keys, evidence and manifest, issued one second apart), each answering the nonce
 * for the document it last served. Everything of policy init and connect() runs as it ships.
 */
import { stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { base64url } from "jose";
import nacl from "tweetnacl";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { toHex, utf8 } from "../../attestation/bytes.ts";
import { sha256 } from "../../attestation/crypto.ts";
import { createAttestationDocument, createNonceAnswer, type EnclaveKeys } from "../../attestation/document.ts";
import { inProcessCli } from "../helpers/cli-in-process.ts";
import { simulatedSnpEnclave } from "../helpers/simulated-document.ts";
import { testDirectory } from "../helpers/test-directory.ts";
import { closeServers, serve } from "./helpers.ts";

const ISSUED = new Date("2026-01-01T00:00:00Z");
const MEASUREMENT = Uint8Array.from({ length: 48 }, (_, i) => (0x30 + i) & 0xff);

const run = inProcessCli();
const dir = await testDirectory("cloister-policy-init-digest-");
let keyFile: string;
let operatorKey: string;
let keys: EnclaveKeys;
/** Two documents signed by one enclave key: `first` at ISSUED, `second` a second later. */
let first: string;
let second: string;

beforeAll(async () => {
  keyFile = join(dir, "api-key");
  await writeFile(keyFile, "ck_policy_init_digest_0123456789\n", { mode: 0o600 });
  keys = { signing: nacl.sign.keyPair(), sealing: nacl.box.keyPair() };
  const enclave = await simulatedSnpEnclave({ keys, now: ISSUED, measurement: MEASUREMENT });
  first = enclave.document;
  second = await createAttestationDocument({
    keys,
    evidence: {
      type: "sev-snp",
      report: base64url.encode(enclave.report),
      endorsementKey: base64url.encode(enclave.vcek),
    },
    manifest: enclave.manifestJws,
    maaToken: null,
    now: new Date(ISSUED.getTime() + 1000),
  });
  operatorKey = join(dir, "operator.public.jwk");
  await writeFile(operatorKey, JSON.stringify(enclave.policy.manifest.trustedSigners[0]));
});
afterEach(closeServers);

/**
 * A host on loopback for the enclave that holds `keys`: the n-th document fetch (from 0) is answered
 * with `documentFor(n)`, and each nonce with an answer for the document served last, as its enclave
 * would sign it. `fetches`: how many document fetches and nonce questions came.
 */
async function serveDocuments(documentFor: (n: number) => string) {
  const fetches = { documents: 0, nonces: 0 };
  let served: string | null = null;
  const url = await serve(async (request: Request) => {
    const { pathname } = new URL(request.url);
    if (request.method === "GET" && pathname === "/v1/attestation") {
      served = documentFor(fetches.documents++);
      return Response.json({ document: served });
    }
    if (request.method === "POST" && pathname === "/v1/attestation/challenge" && served !== null) {
      fetches.nonces++;
      const { nonce } = (await request.json()) as { nonce: string };
      const answer = await createNonceAnswer({
        keys,
        document: served,
        nonce: base64url.decode(nonce),
        now: new Date(),
      });
      return Response.json({ answer });
    }
    return Response.json({ error: { code: "NOT_FOUND", message: "not served here" } }, { status: 404 });
  });
  return { url, fetches };
}

function policyInit(url: string, ...more: string[]): string[] {
  return ["policy", "init", "--url", url, "--operator-key", operatorKey, "--api-key-file", keyFile, ...more];
}

describe("policy init: the self-check's document digest", () => {
  it("accepts a host that answers the check with the very document it pinned from", async () => {
    const { url, fetches } = await serveDocuments(() => first);
    const out = join(dir, "same.json");
    const result = await run(policyInit(url, "--allow-simulator", "--out", out));
    expect(result.code, result.stderr).toBe(0);
    expect(fetches).toEqual({ documents: 2, nonces: 1 });
    await expect(stat(out)).resolves.toBeDefined();
  });

  it("refuses a host that answers the check with another genuine document of the same enclave key, naming both digests and writing nothing", async () => {
    expect(second).not.toBe(first);
    const { url, fetches } = await serveDocuments((n) => (n === 0 ? first : second));
    const out = join(dir, "other.json");
    const result = await run(policyInit(url, "--allow-simulator", "--out", out));
    // connect() verified the second document (its digest is the one found): the comparison refused.
    expect(fetches).toEqual({ documents: 2, nonces: 1 });
    const pinned = toHex(await sha256(utf8(first)));
    const found = toHex(await sha256(utf8(second)));
    expect(result.stderr).toBe(
      `cloister: POLICY_INIT_SELF_CHECK_FAILED: the generated policy does not accept this deployment: document digest: expected ${pinned} (the document the values were taken from), found ${found} (the host answered the check with another document than the one pinned)\n`,
    );
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    await expect(stat(out)).rejects.toMatchObject({ code: "ENOENT" });
  });
});
