/**
 * `Session.auditCheckpoint()` against an enclave booted in this process (scripted engine) on a
 * loopback server: the SDK attests it for real, then accepts only a checkpoint signed by the
 * attested key for its own nonce; against a manifest that disables auditing it refuses without
 * asking. (Through a real host and a tampering proxy: test/e2e/adversarial-host.test.ts.)
 */
import { afterEach, describe, expect, it } from "vitest";
import { toHex } from "../../attestation/bytes.ts";
import { simulatorClientPolicy } from "../../client/dev-policy.ts";
import { connect } from "../../client/sdk.ts";
import { fetchTransport } from "../../client/transport.ts";
import { listen, type RunningServer } from "../../enclave/http.ts";
import { createEnclaveApp } from "../../enclave/server.ts";
import type { Enclave } from "../../enclave/service.ts";
import { simulatedMeasurement } from "../../enclave/tee.ts";
import { DEV_MANIFEST, type ManifestOverrides } from "../../manifests/dev.ts";
import { TINY_MODEL_SHA256 } from "../../models/tiny.ts";
import { bootWith, operatorPublicKey, ScriptedEngine, usage } from "../enclave/helpers.ts";

const servers: RunningServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

/** Boots an enclave, serves it, and connects the SDK straight to it (the host's /v1 paths mapped to the enclave's). */
async function connectTo(overrides: ManifestOverrides = {}) {
  const enclave: Enclave = await bootWith(
    new ScriptedEngine(() => [
      { type: "text", text: "ok" },
      { type: "done", stopReason: "eog", usage },
    ]),
    0,
    overrides,
  );
  const server = await listen(createEnclaveApp(enclave).fetch, "127.0.0.1", 0);
  servers.push(server);
  const paths: string[] = [];
  const transport = fetchTransport((input, init) => {
    const path = new URL(String(input)).pathname.replace(/^\/v1\//, "/");
    paths.push(path);
    return fetch(`${server.url}${path}`, init);
  });
  const policy = simulatorClientPolicy({
    tee: "sim-snp",
    measurement: toHex(await simulatedMeasurement("sim-snp")),
    operatorKey: await operatorPublicKey(),
    modelSha256: TINY_MODEL_SHA256,
    serviceName: DEV_MANIFEST.service.name,
  });
  const session = await connect({ url: "http://enclave.test", policy, apiKey: "unused", transport });
  return { enclave, session, paths };
}

describe("Session.auditCheckpoint", () => {
  it("returns the verified head of the enclave's log, signed by the attested key, fresh on every call", async () => {
    const { enclave, session, paths } = await connectTo();
    const empty = await session.auditCheckpoint();
    expect(empty).toMatchObject({ count: 0, signingPublicKey: toHex(enclave.keys.signing.publicKey) });
    expect((await session.complete("hello")).text).toBe("ok");
    const deadline = Date.now() + 5000;
    let after = await session.auditCheckpoint();
    while (after.count === 0 && Date.now() < deadline) after = await session.auditCheckpoint();
    expect(after.count).toBe(1);
    expect(after.lastRecordHash).not.toBe(empty.lastRecordHash);
    // Each call asked with its own nonce, and the signed line carries it.
    const nonces = [empty, after].map((c) => JSON.parse(c.line).checkpoint.nonce as string);
    expect(nonces[0]).toMatch(/^[0-9a-f]{64}$/);
    expect(nonces[0]).not.toBe(nonces[1]);
    expect(paths.filter((p) => p === "/audit/checkpoint").length).toBeGreaterThanOrEqual(2);
  });

  it("refuses without asking when the attested manifest disables auditing", async () => {
    const { session, paths } = await connectTo({ audit: { enabled: false, reason: "test: no audit" } });
    await expect(session.auditCheckpoint()).rejects.toMatchObject({
      name: "ClientError",
      kind: "configuration",
      code: "AUDIT_DISABLED",
    });
    expect(paths).not.toContain("/audit/checkpoint");
  });
});
