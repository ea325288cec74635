/**
 * Proxy and SDK: the `model` an app names is checked against the enclave the request is sealed to,
 * after any re-verification (stale, or the host's WRONG_ENCLAVE_KEY), not only against the session's
 * last verification: when the re-verified enclave runs another model the policy also accepts, the
 * request is refused (404 model_not_found, SDK MODEL_MISMATCH) and nothing is sealed to it.
 */
import { afterEach, describe, expect, it } from "vitest";
import { toHex } from "../../attestation/bytes.ts";
import { VerifiedEnclave } from "../../attestation/document.ts";
import { simulatorClientPolicy } from "../../client/dev-policy.ts";
import { createProxyApp, enclaveChangeLine } from "../../client/proxy.ts";
import { connect } from "../../client/sdk.ts";
import { fetchTransport, type Transport } from "../../client/transport.ts";
import type { InferenceEngine } from "../../enclave/engine.ts";
import { listen, type RunningServer } from "../../enclave/http.ts";
import { createEnclaveApp } from "../../enclave/server.ts";
import { Enclave } from "../../enclave/service.ts";
import { simulatedMeasurement } from "../../enclave/tee.ts";
import { DEV_MANIFEST, devManifest } from "../../manifests/dev.ts";
import { generateManifestSigningKey, signManifest } from "../../manifests/sign.ts";
import { TINY_MODEL_SHA256 } from "../../models/tiny.ts";
import { ScriptedEngine } from "../enclave/helpers.ts";
import { closeServers, connectTo, OK } from "./helpers.ts";

const servers: RunningServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
  await closeServers();
});
const OTHER_SHA = "c".repeat(64);
const TOKEN = "t".repeat(32);

async function twoEnclaves() {
  const operator = await generateManifestSigningKey("EdDSA");
  const boot = async (file: string, sha256: string) => {
    const manifest = devManifest({ model: { file, sha256 } });
    const enclave = await Enclave.boot({
      manifestJws: await signManifest(manifest, operator.privateJwk),
      operatorKeys: [operator.publicJwk],
      modelPath: "unused (engine injected)",
      tee: "sim-snp",
      engine: Object.assign(new ScriptedEngine(() => OK), {
        info: { modelSha256: sha256, contextSize: manifest.inference.contextSize },
      }) as unknown as InferenceEngine,
      frameIntervalMs: 0,
    });
    const server = await listen(createEnclaveApp(enclave).fetch, "127.0.0.1", 0);
    servers.push(server);
    return server.url;
  };
  const a = await boot("model-a.gguf", TINY_MODEL_SHA256);
  const b = await boot("model-b.gguf", OTHER_SHA);
  const policy = simulatorClientPolicy({
    tee: "sim-snp",
    measurement: toHex(await simulatedMeasurement("sim-snp")),
    operatorKey: operator.publicJwk,
    modelSha256: TINY_MODEL_SHA256,
    serviceName: DEV_MANIFEST.service.name,
  });
  // The user's policy accepts both models.
  const clientPolicy = {
    ...policy,
    manifest: { ...policy.manifest, allowedModelDigests: [TINY_MODEL_SHA256, OTHER_SHA] },
  };
  const state = { target: a, sealedToB: 0, clock: Date.now() };
  const inner = fetchTransport(fetch);
  const transport: Transport = (url, request) => {
    const u = new URL(url);
    if (state.target === b && u.pathname === "/v1/sealed") state.sealedToB++;
    return inner(`${state.target}${u.pathname.replace(/^\/v1\//, "/")}${u.search}`, request);
  };
  const changes: string[] = [];
  /** What `cloister proxy` logs on each verification (enclaveChangeLine). */
  const lines: (string | null)[] = [];
  const session = await connect({
    url: "http://enclave.test",
    policy: clientPolicy,
    apiKey: "unused",
    transport,
    now: () => new Date(state.clock),
    reattestAfterMs: 60_000,
    onVerified: (enclave, previous) => {
      changes.push(`${previous?.manifest.model.file ?? "-"} -> ${enclave.manifest.model.file}`);
      lines.push(enclaveChangeLine(enclave, previous, new Date(state.clock)));
    },
  });
  expect(session.enclave.manifest.model.file).toBe("model-a.gguf");
  return { session, state, a, b, changes, lines };
}

const modelA = `${DEV_MANIFEST.service.name}/model-a.gguf`;

async function askProxy(url: string, stream: boolean) {
  const response = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ model: modelA, stream, messages: [{ role: "user", content: "hi" }] }),
  });
  return { response, body: (await response.json()) as { model?: string; error?: { code: string; param: string } } };
}

describe("the model an app names is the model of the enclave its request is sealed to", () => {
  for (const [how, stream] of [
    ["stale verification, not streamed", false],
    ["stale verification, streamed", true],
  ] as const) {
    it(`proxy: ${how}: re-verified to an enclave serving another model → 404 model_not_found, nothing sealed to it`, async () => {
      const { session, state, b, changes, lines } = await twoEnclaves();
      const proxy = await listen(createProxyApp({ session, token: TOKEN }).fetch, "127.0.0.1", 0);
      servers.push(proxy);
      // The host now routes to another enclave; the verification is stale, so the request re-attests.
      state.target = b;
      state.clock += 61_000;
      const { response, body } = await askProxy(proxy.url, stream);
      expect(session.enclave.manifest.model.file).toBe("model-b.gguf");
      expect(response.status).toBe(404);
      expect(response.headers.get("x-should-retry")).toBe("false");
      expect(body.error?.code).toBe("model_not_found");
      expect(body.error?.param).toBe("model");
      expect(state.sealedToB).toBe(0);
      // The change of enclave is reported (the hook a log line hangs on).
      expect(changes).toEqual(["- -> model-a.gguf", "model-a.gguf -> model-b.gguf"]);
      // cloister proxy's log line for it: what the session now seals to, no content.
      expect(JSON.parse(lines[1] ?? "null")).toMatchObject({
        type: "proxy-enclave-changed",
        tee: "sev-snp",
        simulated: true,
        model: `${DEV_MANIFEST.service.name}/model-b.gguf`,
        modelSha256: OTHER_SHA,
        modelChanged: true,
        documentDigest: session.enclave.documentDigest,
      });
    });
  }

  it("proxy: the host answers WRONG_ENCLAVE_KEY and serves another model: refused, not resealed to it", async () => {
    const { session, state, b } = await twoEnclaves();
    const proxy = await listen(createProxyApp({ session, token: TOKEN }).fetch, "127.0.0.1", 0);
    servers.push(proxy);
    state.target = b; // verification still fresh: B refuses A's key, the SDK re-attests to B
    const { response, body } = await askProxy(proxy.url, false);
    expect(session.enclave.manifest.model.file).toBe("model-b.gguf");
    expect(response.status).toBe(404);
    expect(body.error?.code).toBe("model_not_found");
    expect(state.sealedToB).toBe(1); // only the one sealed to A's key, which B refused
  });

  it("proxy: the same model after re-verification answers, labelled with it", async () => {
    const { session, state, a, lines } = await twoEnclaves();
    const proxy = await listen(createProxyApp({ session, token: TOKEN }).fetch, "127.0.0.1", 0);
    servers.push(proxy);
    state.target = a;
    state.clock += 61_000;
    const { response, body } = await askProxy(proxy.url, false);
    expect(response.status).toBe(200);
    expect(body.model).toBe(modelA);
    // The same document verified again: nothing to log.
    expect(lines).toHaveLength(2);
    expect(lines[1]).toBeNull();
  });

  it("SDK: expectModel is checked after the re-verification, before sealing (MODEL_MISMATCH)", async () => {
    const { session, state, b } = await twoEnclaves();
    state.target = b;
    state.clock += 61_000;
    const error = await session
      .complete("hello", { expectModel: { service: DEV_MANIFEST.service.name, file: "model-a.gguf" } })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ kind: "attestation", code: "MODEL_MISMATCH" });
    expect((error as Error).message).toContain('"cloister-dev/model-b.gguf"');
    expect(state.sealedToB).toBe(0);
    // Without an expectation the session answers from B, as before.
    await expect(session.complete("hello")).resolves.toMatchObject({ finishReason: expect.any(String) });
  });

  it("SDK: expectModel names the service too: the attested model file under another service is MODEL_MISMATCH", async () => {
    const { session, paths } = await connectTo();
    const file = session.enclave.manifest.model.file;
    const error = await session
      .complete("hello", { expectModel: { service: "another-service", file } })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ kind: "attestation", code: "MODEL_MISMATCH", stage: "manifest" });
    expect(paths).not.toContain("/sealed");
    await expect(
      session.complete("hello", { expectModel: { service: DEV_MANIFEST.service.name, file } }),
    ).resolves.toMatchObject({ text: "ok" });
  });

  it("SDK: expectModel that is not two strings is BAD_OPTION", async () => {
    const { session } = await twoEnclaves();
    for (const expectModel of [{ service: 1 }, { service: 1, file: "model-a.gguf" }, { service: "s", file: null }]) {
      const error = await session.complete("hello", { expectModel: expectModel as never }).catch((e: unknown) => e);
      expect(error, JSON.stringify(expectModel)).toMatchObject({ code: "BAD_OPTION", field: "expectModel" });
    }
  });
});

describe("enclaveChangeLine: cloister proxy's log line for another enclave", () => {
  const verified = (documentDigest: string, file: string, sha256: string) =>
    VerifiedEnclave.create({
      tee: "sev-snp",
      simulated: true,
      measurement: "00".repeat(48),
      reportData: "00".repeat(64),
      sealingPublicKey: new Uint8Array(32),
      signingPublicKey: new Uint8Array(32),
      manifestDigest: "c".repeat(64),
      documentDigest,
      manifest: { service: { name: "svc", version: "1" }, model: { file, sha256 } } as never,
      details: {},
    });
  const now = new Date("2026-01-02T03:04:05.000Z");
  const modelChanged = (previous: VerifiedEnclave | null, enclave: VerifiedEnclave) =>
    JSON.parse(enclaveChangeLine(enclave, previous, now) ?? "null")?.modelChanged;

  it("says whether the model changed: its file or its digest, null the first time; nothing for the same document", () => {
    const first = verified("1".repeat(64), "a.gguf", "a".repeat(64));
    expect(modelChanged(null, first)).toBeNull();
    expect(enclaveChangeLine(verified("1".repeat(64), "a.gguf", "a".repeat(64)), first, now)).toBeNull();
    expect(modelChanged(first, verified("2".repeat(64), "a.gguf", "a".repeat(64)))).toBe(false);
    expect(modelChanged(first, verified("2".repeat(64), "b.gguf", "a".repeat(64)))).toBe(true);
    expect(modelChanged(first, verified("2".repeat(64), "a.gguf", "b".repeat(64)))).toBe(true);
  });
});
