/**
 * Booting on a sealed model: the enclave attests first, gets the model key from a real key broker
 * on loopback (released to its attested keys only), decrypts the model into private memory and
 * answers from it. Every refusal stops the boot with a named code and leaves no decrypted copy.
 */
import { execFileSync } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Hono } from "hono";
import type { JWK } from "jose";
import nacl from "tweetnacl";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toHex } from "../../attestation/bytes.ts";
import { type BrokerKey, KeyBroker } from "../../attestation/kbs/broker.ts";
import { wrapModelKey } from "../../attestation/kbs/protocol.ts";
import { createBrokerApp } from "../../attestation/kbs/server.ts";
import { simulatorClientPolicy } from "../../client/dev-policy.ts";
import type { ClientPolicy } from "../../client/policy.ts";
import { listen, type RunningServer } from "../../enclave/http.ts";
import { copyOwnerOf, isPrivateMemoryDirectory, stageSealedModel } from "../../enclave/model-staging.ts";
import { Enclave } from "../../enclave/service.ts";
import { simulatedMeasurement } from "../../enclave/tee.ts";
import { devManifest } from "../../manifests/dev.ts";
import { generateManifestSigningKey, signManifest } from "../../manifests/sign.ts";
import { generateModelKey, type SealedModelInfo, sealModelFile } from "../../models/sealed.ts";
import { writeTinyModel } from "../../models/tiny.ts";
import { openResponseFrames, sealRequest } from "../../sealed/index.ts";

const KEY_ID = "tiny-test";
let dir: string;
let operator: { privateJwk: JWK; publicJwk: JWK };
let sealed: SealedModelInfo;
let sealedPath: string;
const modelKey = generateModelKey(KEY_ID);
let policy: ClientPolicy;
const servers: RunningServer[] = [];

async function broker(keys: BrokerKey[]): Promise<string> {
  const server = await listen(createBrokerApp(new KeyBroker(keys)).fetch, "127.0.0.1", 0);
  servers.push(server);
  return server.url;
}

async function boot(kbsUrl: string, modelPath = sealedPath): Promise<Enclave> {
  const manifest = devManifest({
    model: { sha256: sealed.sha256, sizeBytes: sealed.sizeBytes, sealedAtRest: true, keyId: KEY_ID },
    inference: { threads: 1, sequences: 1 },
  });
  return Enclave.boot({
    manifestJws: await signManifest(manifest, operator.privateJwk),
    operatorKeys: [operator.publicJwk],
    modelPath,
    tee: "sim-snp",
    kbsUrl,
  });
}

/**
 * This process's decrypted model copies in private memory (model-staging.ts names each copy's
 * directory for its process). Other processes' (enclaves of tests running meanwhile, which also
 * remove the copies of processes that have ended) are not counted.
 */
async function stagedCopies(): Promise<string[]> {
  const roots = ["/dev/shm", tmpdir()];
  const found: string[] = [];
  for (const root of roots) {
    const names = await readdir(root).catch(() => [] as string[]);
    found.push(...names.filter((n) => copyOwnerOf(n)?.pid === process.pid).map((n) => join(root, n)));
  }
  return found.sort();
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cloister-sealed-boot-"));
  const plainPath = join(dir, "tiny.gguf");
  await writeTinyModel(plainPath);
  sealedPath = join(dir, "tiny.gguf.sealed");
  sealed = await sealModelFile(plainPath, sealedPath, modelKey);
  operator = await generateManifestSigningKey("EdDSA");
  policy = simulatorClientPolicy({
    tee: "sim-snp",
    measurement: toHex(await simulatedMeasurement("sim-snp")),
    operatorKey: operator.publicJwk,
    modelSha256: sealed.sha256,
    serviceName: devManifest().service.name,
  });
}, 120_000);

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await rm(dir, { recursive: true, force: true });
});

describe("enclave boot on a sealed model", () => {
  it("gets the key from the broker after attesting, unseals into private memory and answers from the model", async () => {
    const url = await broker([{ keyId: KEY_ID, key: modelKey.key, policy }]);
    const enclave = await boot(url);
    try {
      expect(enclave.manifest.model).toMatchObject({ sealedAtRest: true, keyId: KEY_ID, sha256: sealed.sha256 });
      const { envelope, context } = await sealRequest({
        enclavePublicKey: enclave.publicKeys.sealing,
        kind: "chat",
        body: { messages: [{ role: "user", content: "What does the enclave do?" }], maxTokens: 32 },
      });
      const answer = await enclave.handleSealed(envelope, "t", new AbortController().signal);
      let text = "";
      for await (const event of openResponseFrames(context, answer.frames))
        if (event.type === "data") text += event.text;
      expect(text).toBe(
        " The host only forwards sealed bytes and the enclave keeps every prompt private inside a confidential virtual machine.",
      );
    } finally {
      await enclave.close();
    }
  });

  it("stops when the broker's policy refuses this enclave (another measurement), leaving no decrypted copy", async () => {
    const before = await stagedCopies();
    const strict = simulatorClientPolicy({
      tee: "sim-snp",
      measurement: "22".repeat(48),
      operatorKey: operator.publicJwk,
      modelSha256: sealed.sha256,
      serviceName: devManifest().service.name,
    });
    const url = await broker([{ keyId: KEY_ID, key: modelKey.key, policy: strict }]);
    const error = await boot(url).then(
      () => null,
      (e: unknown) => e as { code: string; message: string },
    );
    expect(error?.code).toBe("BOOT_KBS_REFUSED");
    // The operator reading the enclave's log learns the stage and the verifier's code, and this
    // enclave's own public values to compare with the release policy; what the policy expected is
    // in the broker's log, not in what the broker tells a caller.
    const measurement = toHex(await simulatedMeasurement("sim-snp"));
    expect(error?.message).toBe(
      `boot: key broker refused key "${KEY_ID}" (HTTP 403 KBS_ATTESTATION_FAILED): attestation failed at stage appraise (SNP_MEASUREMENT_NOT_ALLOWED); the key broker's log has the reason; ` +
        `this enclave: tee sim-snp, MEASUREMENT ${measurement}, model.sha256 ${sealed.sha256}; ` +
        `compare them with the broker's release policy for key id "${KEY_ID}"; the broker's log names what it expected`,
    );
    expect(error?.message).not.toContain("22".repeat(48));
    expect(await stagedCopies()).toEqual(before);
  });

  it("checks the sealed file before the broker is asked for its key: missing, not a file, another size or key id, not sealed", async () => {
    let requests = 0;
    const app = createBrokerApp(new KeyBroker([{ keyId: KEY_ID, key: modelKey.key, policy }]));
    const server = await listen(
      (request) => {
        requests++;
        return app.fetch(request);
      },
      "127.0.0.1",
      0,
    );
    servers.push(server);
    // Same size as the manifest's file: only its header can tell.
    const otherKeyId = join(dir, "other-key.sealed");
    await sealModelFile(join(dir, "tiny.gguf"), otherKeyId, generateModelKey("tiny-tesX"));
    const zeros = join(dir, "zeros.sealed");
    await writeFile(zeros, Buffer.alloc(sealed.sizeBytes));
    const missing = join(dir, "missing.sealed");
    // A FIFO with no writer: opened for reading as a file is, it would hold the boot up for good.
    const fifo = join(dir, "fifo.sealed");
    execFileSync("mkfifo", [fifo]);
    const cases: [string, string, RegExp][] = [
      [
        missing,
        "MODEL_NOT_FOUND",
        /^--model file .*missing\.sealed: not found; check the path, or put the model file there$/,
      ],
      [dir, "MODEL_NOT_FOUND", /: expected a regular file, found a directory; give the model file's path$/],
      [fifo, "MODEL_NOT_FOUND", /: expected a regular file, found a FIFO; give the model file's path$/],
      [join(dir, "tiny.gguf"), "MODEL_SIZE_MISMATCH", /expected \d+ bytes \(the manifest's model.sizeBytes\), found /],
      [
        otherKeyId,
        "BOOT_SEALED_MODEL_REFUSED",
        /^boot: SEALED_MODEL_KEY_MISMATCH: sealed model keyId: expected "tiny-test"/,
      ],
      [zeros, "BOOT_SEALED_MODEL_REFUSED", /^boot: SEALED_MODEL_MALFORMED: sealed model magic: expected "CLSEALMD"/],
    ];
    for (const [path, code, message] of cases) {
      const error = await boot(server.url, path).then(
        () => null,
        (e: unknown) => e as { code: string; message: string },
      );
      expect(error?.code, path).toBe(code);
      expect(error?.message, path).toMatch(message);
    }
    expect(requests).toBe(0);
    // The same broker, for the manifest's file: asked, so the count above could have moved.
    const enclave = await boot(server.url);
    await enclave.close();
    expect(requests).toBeGreaterThan(0);
  });

  it("stops when the broker is unreachable", async () => {
    const server = await listen(new Hono().fetch, "127.0.0.1", 0);
    const url = server.url;
    await server.close();
    await expect(boot(url)).rejects.toMatchObject({ code: "BOOT_KBS_UNREACHABLE" });
  });

  it("stops on a sealed file that is not the manifest's (another sealing under the same key), leaving no copy", async () => {
    const before = await stagedCopies();
    const url = await broker([{ keyId: KEY_ID, key: modelKey.key, policy }]);
    const resealed = join(dir, "resealed.sealed");
    await sealModelFile(join(dir, "tiny.gguf"), resealed, modelKey);
    const error = await boot(url, resealed).then(
      () => null,
      (e: unknown) => e as { code: string; message: string },
    );
    expect(error?.code).toBe("BOOT_SEALED_MODEL_REFUSED");
    expect(error?.message).toContain("MODEL_DIGEST_MISMATCH");
    expect(await stagedCopies()).toEqual(before);
  });

  it("never decrypts to a disk: without /dev/shm a real TEE refuses (only the simulator may use the temp directory)", async () => {
    const target = { sha256: sealed.sha256, sizeBytes: sealed.sizeBytes, keyId: KEY_ID };
    const noShm = async () => tmpdir();
    await expect(
      stageSealedModel(sealedPath, target, modelKey, { allowDisk: false, privateRoot: noShm }),
    ).rejects.toMatchObject({ code: "MODEL_NO_PRIVATE_MEMORY" });
    const staged = await stageSealedModel(sealedPath, target, modelKey, { allowDisk: true, privateRoot: noShm });
    expect(staged.path.startsWith(tmpdir())).toBe(true);
    await staged.remove();
  });

  it("counts only a memory file system as private memory: /dev/shm's tmpfs, not a disk or /proc", async () => {
    // /proc is no tmpfs anywhere.
    expect(await isPrivateMemoryDirectory("/proc")).toBe(false);
    expect(await isPrivateMemoryDirectory(join(dir, "tiny.gguf"))).toBe(false); // a file, not a directory
    expect(await isPrivateMemoryDirectory(join(dir, "missing"))).toBe(false);
    // /dev/shm: the same answer as the kernel's mount table gives (Linux; elsewhere there is none).
    const mounts = await readFile("/proc/mounts", "utf8").catch(() => "");
    const shmType = mounts
      .split("\n")
      .map((line) => line.split(" "))
      .filter((fields) => fields[1] === "/dev/shm")
      .map((fields) => fields[2])
      .at(-1);
    expect(await isPrivateMemoryDirectory("/dev/shm")).toBe(shmType === "tmpfs" || shmType === "ramfs");
  });

  it("stops when an impostor broker sends a well-formed key that does not open the model", async () => {
    // It answers like a broker, boxing a random key to the enclave's real attested key.
    const app = new Hono();
    let challenge: Uint8Array = new Uint8Array(32);
    app.post("/v1/kbs/challenge", (c) => {
      challenge = nacl.randomBytes(32);
      return c.json({ challenge: Buffer.from(challenge).toString("base64url") });
    });
    app.post("/v1/kbs/release", async (c) => {
      const body = (await c.req.json()) as { document: string };
      const payload = JSON.parse(Buffer.from(body.document.split(".")[1] as string, "base64url").toString()) as {
        cnf: { jwk: { x: string } };
      };
      const digest = toHex(
        new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(body.document))),
      );
      return c.json({
        wrapped: wrapModelKey({
          keyId: KEY_ID,
          key: nacl.randomBytes(32),
          enclaveSealingPublicKey: Buffer.from(payload.cnf.jwk.x, "base64url"),
          challenge,
          documentDigest: digest,
        }),
      });
    });
    const server = await listen(app.fetch, "127.0.0.1", 0);
    servers.push(server);
    const error = await boot(server.url).then(
      () => null,
      (e: unknown) => e as { code: string; message: string },
    );
    expect(error?.code).toBe("BOOT_SEALED_MODEL_REFUSED");
    expect(error?.message).toContain("SEALED_MODEL_AUTH_FAILED");
  });

  it("stops when the broker's answer is not bound to this boot (a box for another enclave)", async () => {
    const app = new Hono();
    app.post("/v1/kbs/challenge", (c) =>
      c.json({ challenge: Buffer.from(nacl.randomBytes(32)).toString("base64url") }),
    );
    app.post("/v1/kbs/release", (c) =>
      c.json({
        wrapped: wrapModelKey({
          keyId: KEY_ID,
          key: modelKey.key,
          enclaveSealingPublicKey: nacl.box.keyPair().publicKey,
          challenge: nacl.randomBytes(32),
          documentDigest: "00".repeat(32),
        }),
      }),
    );
    const server = await listen(app.fetch, "127.0.0.1", 0);
    servers.push(server);
    await expect(boot(server.url)).rejects.toMatchObject({ code: "BOOT_MODEL_KEY_INVALID" });
  });
});
