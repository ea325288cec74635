/**
 * The enclave service in process: boot checks, and the pipeline every opened request passes
 * (policy → PII → inference → audit), observed through sealed frames and the audit chain.
 */

import { copyFile, mkdtemp, open, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { JWK } from "jose";
import nacl from "tweetnacl";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { InferenceEngine, openInferenceEngine } from "../../enclave/engine.ts";
import { EnclaveError } from "../../enclave/errors.ts";
import { modelCopiesLeft } from "../../enclave/model-staging.ts";
import { auditCommitment, verifyAuditLog } from "../../enclave/pipeline/audit.ts";
import { redactPii } from "../../enclave/pipeline/pii.ts";
import { Enclave } from "../../enclave/service.ts";
import { devManifest } from "../../manifests/dev.ts";
import type { Manifest } from "../../manifests/schema.ts";
import { generateManifestSigningKey, signManifest } from "../../manifests/sign.ts";
import { TINY_MODEL_SHA256, writeTinyModel } from "../../models/tiny.ts";
import { sha256 } from "../../sealed/crypto.ts";
import { encodeEnvelopePrefix } from "../../sealed/envelope.ts";
import { enclaveKeyId, openResponseFrames, ReplayGuard, type ResponseEvent, sealRequest } from "../../sealed/index.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { bootWith, ScriptedEngine, usage } from "./helpers.ts";

let dir: string;
let modelPath: string;
let operator: { privateJwk: JWK; publicJwk: JWK };
let enclave: Enclave;

async function boot(manifest: Manifest, options: { tee?: "sim-snp" | "sim-tdx"; keys?: JWK[] } = {}): Promise<Enclave> {
  return Enclave.boot({
    manifestJws: await signManifest(manifest, operator.privateJwk),
    operatorKeys: options.keys ?? [operator.publicJwk],
    modelPath,
    tee: options.tee ?? "sim-snp",
  });
}

const manifest = (overrides: Parameters<typeof devManifest>[0] = {}) =>
  devManifest({ ...overrides, inference: { threads: 1, sequences: 2, ...overrides.inference } });

async function ask(target: Enclave, body: unknown, kind: "chat" | "complete" = "chat"): Promise<ResponseEvent[]> {
  const { envelope, context } = await sealRequest({ enclavePublicKey: target.publicKeys.sealing, kind, body });
  const answer = await target.handleSealed(envelope, "host-tenant", new AbortController().signal);
  const events: ResponseEvent[] = [];
  for await (const event of openResponseFrames(context, answer.frames)) events.push(event);
  return events;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cloister-enclave-"));
  modelPath = join(dir, "tiny.gguf");
  await writeTinyModel(modelPath);
  operator = await generateManifestSigningKey("EdDSA");
  enclave = await boot(manifest());
}, 120_000);

afterAll(async () => {
  await enclave?.close();
  await rm(dir, { recursive: true, force: true });
});

describe("enclave boot", () => {
  it("exposes its public keys only: no property reaches a secret key, and the copies are frozen", async () => {
    const enclave = await boot(manifest());
    expect(Object.isFrozen(enclave.publicKeys)).toBe(true);
    expect(enclave.publicKeys.sealing).toHaveLength(32);
    expect(enclave.publicKeys.signing).toHaveLength(32);
    expect((enclave as unknown as { keys?: unknown }).keys).toBeUndefined();
    await enclave.close();
  });

  it("refuses a manifest signed by an untrusted operator key", async () => {
    const stranger = await generateManifestSigningKey("EdDSA");
    await expect(boot(manifest(), { keys: [stranger.publicJwk] })).rejects.toMatchObject({
      code: "BOOT_MANIFEST_INVALID",
    });
  });

  it("refuses a TEE the manifest does not list", async () => {
    await expect(
      boot(manifest({ tee: { platforms: ["sim-tdx"], minimumTcb: { snp: null } } }), { tee: "sim-snp" }),
    ).rejects.toMatchObject({
      code: "BOOT_PLATFORM_NOT_ALLOWED",
    });
  });

  it("refuses a model whose digest differs from the manifest's, naming both digests", async () => {
    const wrong = "ab".repeat(32);
    const error = await boot(manifest({ model: { sha256: wrong } })).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "MODEL_DIGEST_MISMATCH" });
    expect((error as Error).message).toContain(wrong);
    expect((error as Error).message).toContain(TINY_MODEL_SHA256);
    // The file the operator gave (--model), not the private copy in /dev/shm it was hashed through.
    expect((error as Error).message).toContain(`model file ${modelPath}: `);
    expect((error as Error).message).not.toContain("cloister-model-");
  });

  it("names the model file the operator gave in a load failure too, not the private copy it loaded", async () => {
    // Pinned bytes (digest and size) that are not a GGUF model: the copy is made and checked, the load fails.
    const bytes = Buffer.from("not a GGUF model, but the manifest pins these bytes");
    const notModel = join(dir, "not-a-model.gguf");
    await writeFile(notModel, bytes);
    const pinned = { sha256: Buffer.from(sha256(bytes)).toString("hex"), sizeBytes: bytes.length };
    const error = await Enclave.boot({
      manifestJws: await signManifest(manifest({ model: pinned }), operator.privateJwk),
      operatorKeys: [operator.publicJwk],
      modelPath: notModel,
      tee: "sim-snp",
    }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "MODEL_LOAD_FAILED" });
    expect((error as Error).message).toContain(`model file ${notModel}: `);
    expect((error as Error).message).not.toContain("cloister-model-");
  });

  it("refuses a manifest contextSize that is not the context llama.cpp runs (over the training context, or rounded up), naming both", async () => {
    // The tiny model's training context is 2048; llama.cpp would run 2048 while the attested
    // manifest says 4096, and every request using the manifest's maxTokens would then fail.
    const error = await rejectionOf(
      boot(manifest({ inference: { contextSize: 4096, maxTokens: 4096 } })),
      EnclaveError,
    );
    expect(error).toMatchObject({ code: "BOOT_CONTEXT_SIZE_MISMATCH" });
    expect((error as Error).message).toMatch(
      /inference\.contextSize: expected the context that runs \(2048\), found 4096/,
    );
    // llama.cpp rounds a context up to a multiple of 256: 300 runs as 512, which is not what is attested.
    const rounded = await boot(manifest({ inference: { contextSize: 300, maxTokens: 256 } })).catch((e: unknown) => e);
    expect(rounded).toMatchObject({ code: "BOOT_CONTEXT_SIZE_MISMATCH" });
    expect((rounded as Error).message).toMatch(/expected the context that runs \(512\), found 300 .*multiple of 256/);
    expect((rounded as Error).message).toContain("set inference.contextSize to 512 (maxTokens at most that)");
  });

  it("removes the model copy of a boot refused after the engine loaded, even when the engine's close fails", async () => {
    const before = modelCopiesLeft().map((c) => c.dir);
    const close = InferenceEngine.prototype.close;
    // The engine is freed (llama.cpp's memory), then its close fails as a dispose may, with a
    // message carrying a line break and a terminal escape (a native error's text is not ours).
    const failing = vi.spyOn(InferenceEngine.prototype, "close").mockImplementationOnce(async function (
      this: InferenceEngine,
    ) {
      await close.call(this);
      throw new Error("the engine's close failed\n\u001b[2Ja stand-in");
    });
    const stderr = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    try {
      const error = await boot(manifest({ inference: { contextSize: 4096, maxTokens: 4096 } })).catch(
        (e: unknown) => e,
      );
      expect(failing).toHaveBeenCalledTimes(1);
      // The boot's refusal, not the clean-up's failure (said on stderr, on one line, escaped as an error line is).
      expect(error).toMatchObject({ code: "BOOT_CONTEXT_SIZE_MISMATCH" });
      expect(stderr.mock.calls.map(([text]) => String(text))).toContain(
        "cloister enclave: boot refused; closing its engine failed too (the engine's close failed\\u000a\\u001b[2Ja stand-in)\n",
      );
      expect(modelCopiesLeft().map((c) => c.dir)).toEqual(before);
    } finally {
      stderr.mockRestore();
      failing.mockRestore();
    }
  });

  it("refuses a --tee option its mode does not take before it looks at the model file", async () => {
    const error = await Enclave.boot({
      manifestJws: await signManifest(manifest(), operator.privateJwk),
      operatorKeys: [operator.publicJwk],
      modelPath: join(dir, "missing.gguf"),
      tee: "sim-snp",
      tdxCollateralDir: dir,
    }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "TDX_COLLATERAL_UNUSED" });
  });

  it("formats prompts with the chat wrapper the manifest pins (model.chatWrapper), not the one auto chooses", async () => {
    const messages = [{ role: "user", content: "What does the enclave do?" }] as const;
    const promptTokens = async (target: Enclave): Promise<unknown> => {
      const final = (await ask(target, { messages, maxTokens: 1 })).at(-1);
      return final?.type === "final" ? final.usage.promptTokens : final;
    };
    const chatMl = await openInferenceEngine({
      modelPath,
      expectedSha256: TINY_MODEL_SHA256,
      threads: 1,
      sequences: 1,
      chatWrapper: "chatML",
    });
    const pinned = await boot(manifest({ model: { chatWrapper: "chatML" } }));
    try {
      const expected = (await chatMl.renderPrompt({ messages: [...messages] })).tokenCount;
      expect(expected).not.toBe(await promptTokens(enclave));
      expect(await promptTokens(pinned)).toBe(expected);
    } finally {
      await pinned.close();
      await chatMl.close();
    }
  });

  it("boots a contextSize that is not a multiple of 256 when rounding up would reach the training context", async () => {
    // node-llama-cpp rounds a context up to a multiple of 256 only while the result stays below the
    // model's training context (2048 here): 2000 runs as 2000, so a schema rule "multiple of 256"
    // would refuse a manifest that boots. The boot check above compares with what runs instead.
    const near = await boot(manifest({ inference: { contextSize: 2000, maxTokens: 256 } }));
    expect(near.manifest.inference.contextSize).toBe(2000);
    await near.close();
  });
});

describe("enclave boot and requests on an injected engine", () => {
  const done = { type: "done", stopReason: "eog", usage } as const;

  it("refuses an engine whose model is not the manifest's, naming both digests", async () => {
    const engine = new ScriptedEngine(() => [done]);
    const other = "cd".repeat(32);
    Object.assign(engine.info, { modelSha256: other });
    const error = await rejectionOf(bootWith(engine), EnclaveError);
    expect(error).toMatchObject({ code: "BOOT_MODEL_DIGEST_MISMATCH", status: 500 });
    expect((error as Error).message).toBe(
      `boot: the engine's model is not the manifest's model (expected sha256 ${TINY_MODEL_SHA256}, found ${other})`,
    );
  });

  it("refuses a request when the replay cache is full as overload (503 REPLAY_CACHE_FULL), not a bad request", async () => {
    const scripted = await bootWith(new ScriptedEngine(() => [done]));
    // A cache of one id stands in for 100 000 ids seen within the freshness window.
    Object.assign(scripted, { replayGuard: new ReplayGuard({ maxEntries: 1 }) });
    expect((await ask(scripted, { prompt: "The enclave" }, "complete")).at(-1)).toMatchObject({ type: "final" });
    const { envelope } = await sealRequest({
      enclavePublicKey: scripted.publicKeys.sealing,
      kind: "complete",
      body: { prompt: "The enclave" },
    });
    const error = await rejectionOf(scripted.handleSealed(envelope, null, new AbortController().signal), EnclaveError);
    expect(error).toMatchObject({ code: "REPLAY_CACHE_FULL", status: 503 });
  });

  it("gives the engine the sealed sampling fields as sent, maxTokens held to the manifest's (its default)", async () => {
    const engine = new ScriptedEngine(() => [done]);
    const scripted = await bootWith(engine);
    const limit = scripted.manifest.inference.maxTokens;
    const sampling = { temperature: 0.5, topP: 0.9, seed: 7, stop: ["\n\n"], tenant: "ab".repeat(16) };
    for (const body of [
      { prompt: "The enclave", maxTokens: limit + 1, ...sampling },
      { prompt: "The enclave", maxTokens: 3 },
      { prompt: "The enclave" },
    ]) {
      expect((await ask(scripted, body, "complete")).at(-1)).toMatchObject({ type: "final" });
    }
    const given = engine.requests.map(({ signal, ...request }) => request);
    expect(given).toEqual([
      { prompt: "The enclave", maxTokens: limit, ...sampling },
      { prompt: "The enclave", maxTokens: 3 },
      { prompt: "The enclave", maxTokens: limit },
    ]);
  });
});

describe("model staging", () => {
  it("refuses a model file whose size is not the manifest's before copying it, and a sealed-at-rest model", async () => {
    const grown = join(dir, "grown-tiny.gguf");
    await copyFile(modelPath, grown);
    const handle = await open(grown, "a");
    await handle.write(Buffer.alloc(4096));
    await handle.close();
    const boot = (m: Manifest, path: string) =>
      signManifest(m, operator.privateJwk).then((manifestJws) =>
        Enclave.boot({ manifestJws, operatorKeys: [operator.publicJwk], modelPath: path, tee: "sim-snp" }),
      );
    await expect(boot(manifest(), grown)).rejects.toMatchObject({ code: "MODEL_SIZE_MISMATCH" });
    await expect(
      boot(manifest({ model: { sealedAtRest: true, keyId: "model-key-1" } }), modelPath),
    ).rejects.toMatchObject({ code: "BOOT_KBS_REQUIRED" });
    // A broker URL for a plain model is a configuration mistake, said so, not silently unused.
    await expect(
      signManifest(manifest(), operator.privateJwk).then((manifestJws) =>
        Enclave.boot({
          manifestJws,
          operatorKeys: [operator.publicJwk],
          modelPath,
          tee: "sim-snp",
          kbsUrl: "http://127.0.0.1:9",
        }),
      ),
    ).rejects.toMatchObject({ code: "BOOT_KBS_UNUSED" });
    // A rule the enclave could never evaluate is refused, not silently never matched.
    const metadataRule = { id: "no-beta", kind: "metadataEquals", action: "block", key: "tier", value: "beta" };
    await expect(
      boot(manifest({ requestPolicy: { rules: [metadataRule] } } as Parameters<typeof manifest>[0]), modelPath),
    ).rejects.toMatchObject({ code: "BOOT_POLICY_UNSUPPORTED" });
  });

  it("loads a private copy: rewriting the operator's model file after the digest check changes nothing", async () => {
    const own = join(dir, "own-tiny.gguf");
    await copyFile(modelPath, own);
    const staged = await Enclave.boot({
      manifestJws: await signManifest(manifest(), operator.privateJwk),
      operatorKeys: [operator.publicJwk],
      modelPath: own,
      tee: "sim-snp",
    });
    try {
      // A host that can write the disk overwrites the model in place (same size, same inode).
      const handle = await open(own, "r+");
      await handle.write(Buffer.alloc(1024 * 1024, 0x41), 0, 1024 * 1024, 4 * 1024 * 1024);
      await handle.close();
      const events = await ask(staged, {
        messages: [{ role: "user", content: "What does the enclave do?" }],
        maxTokens: 32,
      });
      expect(events.flatMap((e) => (e.type === "data" ? [e.text] : [])).join("")).toBe(
        " The host only forwards sealed bytes and the enclave keeps every prompt private inside a confidential virtual machine.",
      );
    } finally {
      await staged.close();
    }
  });
});

describe("enclave request pipeline", () => {
  it("answers a chat request and audits it under the attested key", async () => {
    const before = enclave.collectAudit(0).next;
    const events = await ask(enclave, {
      messages: [{ role: "user", content: "What does the enclave do?" }],
      maxTokens: 32,
    });
    const text = events.flatMap((e) => (e.type === "data" ? [e.text] : [])).join("");
    expect(text).toBe(
      " The host only forwards sealed bytes and the enclave keeps every prompt private inside a confidential virtual machine.",
    );
    expect(events.at(-1)).toMatchObject({ type: "final", finishReason: "stop" });
    const batch = enclave.collectAudit(0);
    expect(batch.next).toBe(before + 1);
    const verified = verifyAuditLog(batch.lines, enclave.publicKeys.signing);
    expect(verified.ok).toBe(true);
    const last = JSON.parse(batch.lines.at(-1)!) as { record: Record<string, unknown> };
    expect(last.record).toMatchObject({ decision: "allow", blockedBy: null });
    expect(batch.lines.join("\n")).not.toContain("enclave do");
    expect(batch.lines.join("\n")).not.toContain("sealed bytes");
  });

  it("audits a complete answer even when the consumer stops right after the final frame", async () => {
    const before = enclave.collectAudit(0).next;
    const body = { messages: [{ role: "user", content: "What does the enclave do?" }], maxTokens: 32 };
    const { envelope, context } = await sealRequest({
      enclavePublicKey: enclave.publicKeys.sealing,
      kind: "chat",
      body,
    });
    const answer = await enclave.handleSealed(envelope, "host-tenant", new AbortController().signal);
    const iterator = answer.frames[Symbol.asyncIterator]();
    const frames: Uint8Array[] = [];
    for (;;) {
      const { done, value } = await iterator.next();
      if (done === true) throw new Error("stream ended before its final frame");
      frames.push(value);
      // A final frame is the only one whose first plaintext byte is 0x02; find it by opening.
      const events: ResponseEvent[] = [];
      const probe = openResponseFrames(
        context,
        (async function* () {
          yield* frames;
        })(),
      );
      try {
        for await (const event of probe) events.push(event);
      } catch {
        // the stream so far has no final frame yet (STREAM_TRUNCATED): keep reading
      }
      if (events.at(-1)?.type === "final") break;
    }
    await iterator.return?.(undefined); // the consumer goes away right after the final frame
    const batch = enclave.collectAudit(0);
    expect(batch.next).toBe(before + 1);
    const last = JSON.parse(batch.lines.at(-1)!) as { record: Record<string, unknown> };
    expect(last.record).toMatchObject({ decision: "allow", error: null });
    expect(last.record.usage).toMatchObject({ completionTokens: expect.any(Number) });
    expect(last.record.responseHmac).toMatch(/^[0-9a-f]{64}$/);
    expect(verifyAuditLog(batch.lines, enclave.publicKeys.signing).ok).toBe(true);
  });

  it("blocks a prompt matching a manifest rule before the model sees it", async () => {
    const events = await ask(enclave, {
      messages: [{ role: "user", content: "store this -----BEGIN RSA PRIVATE KEY----- please" }],
    });
    expect(events).toEqual([expect.objectContaining({ type: "error", code: "POLICY_BLOCKED" })]);
    const detail = (events[0] as { detail: string | null }).detail ?? "";
    expect(detail).toContain("no-private-keys");
    expect(detail).not.toContain("PRIVATE KEY");
    const record = JSON.parse(enclave.collectAudit(0).lines.at(-1)!).record;
    // Blocked by the first evaluation, before the PII filter (which would find a secret_key here).
    expect(record).toMatchObject({
      decision: "block",
      blockedBy: "policy",
      ruleId: "no-private-keys",
      piiFindings: [],
    });
    // The refusal's error frame opens that record's prompt commitment (to the client only).
    const opening = (events[0] as { auditOpening: string | null }).auditOpening;
    expect(opening).toMatch(/^[0-9a-f]{64}$/);
    const prompt = "store this -----BEGIN RSA PRIVATE KEY----- please";
    expect(auditCommitment(Buffer.from(opening!, "hex"), "prompt", prompt)).toBe(record.promptHmac);
    expect(auditCommitment(Buffer.from(opening!, "hex"), "prompt", `${prompt}!`)).not.toBe(record.promptHmac);
  });

  it("redacts PII and records only its counts", async () => {
    const events = await ask(
      enclave,
      { prompt: "Write to alice@example.com and call +1 415 555 0100", maxTokens: 4 },
      "complete",
    );
    expect(events.at(-1)).toMatchObject({ type: "final" });
    const line = enclave.collectAudit(0).lines.at(-1)!;
    expect(JSON.parse(line).record.piiFindings).toEqual(
      expect.arrayContaining([
        { entity: "email", count: 1 },
        { entity: "phone", count: 1 },
      ]),
    );
    expect(line).not.toContain("alice");
    // The model was given the redacted prompt, not the original: its prompt token count is the
    // redacted text's (the same text sent already redacted), not the original's.
    const redacted = redactPii("Write to alice@example.com and call +1 415 555 0100", ["email", "phone"]).text;
    expect(redacted).not.toContain("alice");
    const direct = await ask(enclave, { prompt: redacted, maxTokens: 4 }, "complete");
    const promptTokens = (e: ResponseEvent[]) => (e.at(-1) as { usage?: { promptTokens: number } }).usage?.promptTokens;
    expect(promptTokens(events)).toBe(promptTokens(direct));
    const original = await ask(
      enclave,
      { prompt: "Write to Alice at home and call her at 4 1 5", maxTokens: 4 },
      "complete",
    );
    expect(promptTokens(original)).not.toBe(promptTokens(direct));
  });

  it("tells the sender, in the sealed final frame only, which PII kinds it redacted and how many", async () => {
    const sealedAsk = async (body: unknown) => {
      const { envelope, context } = await sealRequest({
        enclavePublicKey: enclave.publicKeys.sealing,
        kind: "chat",
        body,
      });
      const answer = await enclave.handleSealed(envelope, "host-tenant", new AbortController().signal);
      const frames: Uint8Array[] = [];
      for await (const frame of answer.frames) frames.push(frame.slice());
      const events: ResponseEvent[] = [];
      for await (const event of openResponseFrames(context, frames)) events.push(event);
      return { wire: Buffer.concat(frames), final: events.at(-1) };
    };
    const redacted = await sealedAsk({
      messages: [
        { role: "user", content: "Mail bob@example.org please" },
        { role: "user", content: "and alice@example.com too, or call +1 415 555 0100" },
      ],
      maxTokens: 4,
    });
    expect(redacted.final).toMatchObject({ type: "final", redacted: { email: 2, phone: 1 } });
    // The host's bytes (every frame as the enclave hands it out) hold no kind in the clear.
    for (const clear of ["redacted", "email", "phone"]) expect(redacted.wire.includes(Buffer.from(clear))).toBe(false);
    const plain = await sealedAsk({ messages: [{ role: "user", content: "Write about the sea" }], maxTokens: 4 });
    expect(plain.final).toMatchObject({ type: "final", redacted: null });
  });

  it("refuses a request body that does not match its kind", async () => {
    const events = await ask(enclave, { prompt: "hello" }, "chat");
    expect(events).toEqual([expect.objectContaining({ type: "error", code: "REQUEST_INVALID" })]);
    // The detail names the field, the expected and the found value, a string by its length only.
    const wrongType = await ask(enclave, { messages: [{ role: "user", content: 42 }] }, "chat");
    expect(wrongType).toEqual([
      expect.objectContaining({
        code: "REQUEST_INVALID",
        detail: "body.messages.0.content: expected string, found 42",
      }),
    ]);
    const tooLow = await ask(enclave, { prompt: "a secret prompt", maxTokens: 0 }, "complete");
    expect(tooLow).toEqual([
      expect.objectContaining({ code: "REQUEST_INVALID", detail: "body.maxTokens: expected a number >= 1, found 0" }),
    ]);
    const badRole = await ask(enclave, { messages: [{ role: "a secret role", content: "x" }] }, "chat");
    const detail = (badRole[0] as { detail: string }).detail;
    expect(detail).toMatch(
      /^body\.messages\.0\.role: expected one of "system", "user", "assistant", found a string of 13 characters that is none of them$/,
    );
  });

  it("refuses a sealed requestId that is not 32 hex digits (400): nothing audited, the enclave keeps answering", async () => {
    // Anyone can seal to the enclave's key and choose the id. One the audit writer cannot record
    // (over 256 characters) must not reach it: a failed record stops the enclave (AUDIT_FAILED).
    const keyId = await enclaveKeyId(enclave.publicKeys.sealing);
    const before = enclave.collectAudit(0).next;
    for (const requestId of ["f".repeat(300), "F".repeat(32)]) {
      const json = JSON.stringify({
        v: 1,
        requestId,
        timestamp: Date.now(),
        kind: "complete",
        body: { prompt: "The enclave", maxTokens: 2 },
      });
      const bytes = new TextEncoder().encode(json);
      const ephemeral = nacl.box.keyPair();
      const nonce = nacl.randomBytes(24);
      const prefix = encodeEnvelopePrefix("complete", keyId, 48 + bytes.length, ephemeral.publicKey, nonce);
      const plaintext = new Uint8Array([...sha256(prefix), ...bytes]);
      const box = nacl.box(plaintext, nonce, enclave.publicKeys.sealing, ephemeral.secretKey);
      const envelope = new Uint8Array([...prefix, ...box]);
      const error = await enclave.handleSealed(envelope, "team-a", new AbortController().signal).catch((e) => e);
      expect(error).toMatchObject({ code: "REQUEST_MALFORMED", status: 400 });
    }
    expect(enclave.collectAudit(0).next).toBe(before);
    const events = await ask(enclave, { prompt: "The enclave", maxTokens: 2 }, "complete");
    expect(events.at(-1)?.type).toBe("final");
    expect(enclave.collectAudit(0).next).toBe(before + 1);
  });

  it("refuses a host audit label the audit writer could not record (400, before opening: nothing audited, id not used)", async () => {
    const { envelope } = await sealRequest({
      enclavePublicKey: enclave.publicKeys.sealing,
      kind: "complete",
      body: { prompt: "The enclave", maxTokens: 2 },
    });
    const before = enclave.collectAudit(0).next;
    // 65 characters: one more than an API-key id may have (TENANT_LABEL_PATTERN, host/identity.ts).
    for (const label of ["", "x".repeat(65), "x".repeat(201), "team a", "tenant\nforged"]) {
      const error = await enclave.handleSealed(envelope, label, new AbortController().signal).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: "TENANT_HEADER_INVALID", status: 400 });
      expect((error as Error).message).not.toContain(label.length > 0 ? label : "\u0000");
    }
    expect(enclave.collectAudit(0).next).toBe(before);
    // The request id was not consumed: the same envelope with a valid label (64 characters, the
    // most an API-key id has) is answered and audited.
    const answer = await enclave.handleSealed(envelope, "t".repeat(64), new AbortController().signal);
    for await (const _ of answer.frames) {
      // drain
    }
    expect(enclave.collectAudit(0).next).toBe(before + 1);
  });

  it("refuses a replayed request with REQUEST_REPLAYED (409) before decrypting its body again", async () => {
    const { envelope } = await sealRequest({
      enclavePublicKey: enclave.publicKeys.sealing,
      kind: "complete",
      body: { prompt: "The enclave", maxTokens: 2 },
    });
    const first = await enclave.handleSealed(envelope, null, new AbortController().signal);
    for await (const _ of first.frames) {
      // drain
    }
    const error = await rejectionOf(enclave.handleSealed(envelope, null, new AbortController().signal), EnclaveError);
    expect(error).toMatchObject({ code: "REQUEST_REPLAYED", status: 409 });
  });

  it("an acknowledgement for another boot drops nothing (a collector that missed a restart)", () => {
    const all = enclave.collectAudit(0);
    const other = enclave.collectAudit(all.next, "0".repeat(64));
    expect(other.lines).toEqual(all.lines);
    expect(enclave.collectAudit(0, null).lines).toEqual(all.lines);
  });

  it("acknowledged audit lines are dropped; unacknowledged ones are kept", () => {
    const all = enclave.collectAudit(0);
    expect(all.lines.length).toBeGreaterThan(2);
    const rest = enclave.collectAudit(all.next - 1);
    expect(rest.lines).toEqual([all.lines.at(-1)]);
    expect(rest.from).toBe(all.next - 1);
  });

  it("blocks on PII when the manifest says block", async () => {
    const strict = await boot(
      manifest({
        requestPolicy: { pii: { mode: "block", entities: ["email"], reason: null } },
      }),
    );
    try {
      const events = await ask(strict, { messages: [{ role: "user", content: "mail bob@example.org" }] });
      expect(events).toEqual([expect.objectContaining({ type: "error", code: "PII_BLOCKED" })]);
      expect(JSON.stringify(events)).not.toContain("bob@");
      const record = JSON.parse(strict.collectAudit(0).lines.at(-1)!).record;
      expect(record).toMatchObject({ decision: "block", blockedBy: "pii" });
      const opening = Buffer.from((events[0] as { auditOpening: string }).auditOpening, "hex");
      expect(auditCommitment(opening, "prompt", "mail bob@example.org")).toBe(record.promptHmac);
    } finally {
      await strict.close();
    }
  });

  it("records the rule that admitted a request, and holds a redacted prompt to the token limit", async () => {
    const strict = await boot(
      manifest({
        requestPolicy: {
          defaultAction: "allow",
          rules: [
            { id: "short-prompts", kind: "maxPromptTokens", action: "block", limit: 60 },
            { id: "completions-ok", kind: "requestKind", action: "allow", kinds: ["complete"] },
          ],
          pii: { mode: "redact", entities: ["ip_address"], reason: null },
        },
      }),
    );
    try {
      const answered = await ask(strict, { prompt: "hello", maxTokens: 2 }, "complete");
      expect(answered.at(-1)).toMatchObject({ type: "final" });
      const admitted = JSON.parse(strict.collectAudit(0).lines.at(-1)!).record;
      expect(admitted).toMatchObject({ decision: "allow", ruleId: "completions-ok" });

      // Short as sent; each address becomes a placeholder of many more tokens.
      const addresses = Array.from({ length: 8 }, (_, i) => `::${i + 1}`).join(" ");
      const refused = await ask(strict, { messages: [{ role: "user", content: addresses }] });
      expect(refused).toEqual([expect.objectContaining({ type: "error", code: "POLICY_BLOCKED" })]);
      expect((refused[0] as { detail: string }).detail).toContain("short-prompts");
      const record = JSON.parse(strict.collectAudit(0).lines.at(-1)!).record;
      expect(record).toMatchObject({
        decision: "block",
        blockedBy: "policy",
        ruleId: "short-prompts",
        piiFindings: [{ entity: "ip_address", count: 8 }],
      });
    } finally {
      await strict.close();
    }
  });

  it("redacts, not blocks, a card that is whole in one message next to digits in the next", async () => {
    const events = await ask(enclave, {
      messages: [
        { role: "user", content: "Card 4111 1111 1111 1111" },
        { role: "user", content: "234 is the code?" },
      ],
      maxTokens: 4,
    });
    expect(events.at(-1)).toMatchObject({ type: "final" });
  });

  it("blocks a chat whose card number is split over two messages (it would reach the model whole)", async () => {
    const events = await ask(enclave, {
      messages: [
        { role: "user", content: "my card starts 4111 1111" },
        { role: "assistant", content: "go on" },
        { role: "user", content: "" },
      ],
    });
    expect(events.at(-1)).toMatchObject({ type: "final" }); // nothing split: answered
    const split = await ask(enclave, {
      messages: [
        { role: "user", content: "my card starts 4111 1111" },
        { role: "user", content: " 1111 1111, thanks" },
      ],
    });
    expect(split).toEqual([
      expect.objectContaining({ type: "error", code: "PII_BLOCKED", detail: "PII split across messages: credit_card" }),
    ]);
    const record = JSON.parse(enclave.collectAudit(0).lines.at(-1)!).record;
    expect(record).toMatchObject({
      decision: "block",
      blockedBy: "pii",
      piiFindings: [{ entity: "credit_card", count: 1 }],
    });
  });

  it("sends no opening with a refusal when the audit keeps no prompt commitment", async () => {
    const answersOnly = await boot(
      manifest({ audit: { enabled: true, reason: null, recordPromptHash: false, recordResponseHash: true } }),
    );
    try {
      const events = await ask(answersOnly, {
        messages: [{ role: "user", content: "-----BEGIN PRIVATE KEY-----" }],
      });
      expect(events).toEqual([expect.objectContaining({ type: "error", code: "POLICY_BLOCKED", auditOpening: null })]);
      expect(JSON.parse(answersOnly.collectAudit(0).lines.at(-1)!).record.promptHmac).toBeNull();
      // An answer still gets its opening (for the answer's commitment).
      const answered = await ask(answersOnly, { messages: [{ role: "user", content: "hello" }], maxTokens: 4 });
      expect(answered.at(-1)).toMatchObject({ type: "final", auditOpening: expect.stringMatching(/^[0-9a-f]{64}$/) });
    } finally {
      await answersOnly.close();
    }
  });
});
