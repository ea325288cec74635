/**
 * Sealed models and the key broker: what sealing costs an operator and what unsealing adds to an
 * enclave's boot.
 *
 * - seal / unseal throughput (MB/s) and peak RSS for the benchmark models, next to a plain SHA-256
 *   of the same file (what staging a plain model already pays); unsealing with the ciphertext hashed
 *   on this thread and on a worker thread (what the enclave does from PARALLEL_HASH_MIN_BYTES on);
 * - key release through the broker's HTTP API on loopback (challenge + nonce answer + release:
 *   full document verification against the release policy, then the box), cold and warm;
 * - enclave boot, tiny model, plain vs sealed (broker on loopback), medians.
 *
 *   npm run bench:kbs            # small and medium (f16), 20 releases, 5 boots each
 */
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { base64url } from "jose";
import { toHex } from "../attestation/bytes.ts";
import { clearVerifiedDocumentCache } from "../attestation/document.ts";
import { KeyBroker } from "../attestation/kbs/broker.ts";
import { createBrokerApp } from "../attestation/kbs/server.ts";
import { simulatorClientPolicy } from "../client/dev-policy.ts";
import { listen } from "../enclave/http.ts";
import { Enclave } from "../enclave/service.ts";
import { simulatedMeasurement } from "../enclave/tee.ts";
import { devManifest } from "../manifests/dev.ts";
import { generateManifestSigningKey, signManifest } from "../manifests/sign.ts";
import { writeBenchModel } from "../models/bench.ts";
import { sha256File } from "../models/hash.ts";
import { generateModelKey, sealModelFile, unsealModelFile } from "../models/sealed.ts";
import { writeTinyModel } from "../models/tiny.ts";
import { stats } from "./bench-common.ts";

let peakRss = 0;
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
}, 20);

async function timed<T>(run: () => Promise<T>): Promise<{ ms: number; rssMb: number; value: T }> {
  peakRss = process.memoryUsage().rss;
  const t0 = performance.now();
  const value = await run();
  return { ms: performance.now() - t0, rssMb: Math.max(peakRss, process.memoryUsage().rss) / 2 ** 20, value };
}

const median = (xs: number[]) => stats(xs).median;
const p90 = (xs: number[]) => stats(xs).p90;
const mbps = (bytes: number, ms: number) => (bytes / 2 ** 20 / (ms / 1000)).toFixed(0);

const dir = await mkdtemp(join(tmpdir(), "cloister-bench-kbs-"));
try {
  const key = generateModelKey("bench");

  // 1. Throughput.
  console.log(
    "\n## seal / unseal throughput (AES-256-GCM, 1 MiB chunks) vs plain SHA-256; unsealed into /dev/shm as the enclave does\n",
  );
  console.log(
    "| model | size MiB | SHA-256 MB/s | seal MB/s | unseal MB/s, one thread | unseal MB/s, ciphertext hashed on a worker | unseal peak RSS MiB |",
  );
  console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
  const privateDir = await mkdtemp(join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "cloister-bench-unseal-"));
  try {
    for (const preset of ["small", "medium"] as const) {
      const plain = join(dir, `${preset}.gguf`);
      const { bytes } = await writeBenchModel(plain, preset, { quant: "f16" });
      const hash = await timed(() => sha256File(plain));
      const sealedPath = join(dir, `${preset}.sealed`);
      const seal = await timed(() => sealModelFile(plain, sealedPath, key));
      const expected = { sha256: seal.value.sha256, sizeBytes: seal.value.sizeBytes, keyId: key.keyId };
      const unseal = async (parallelHashMinBytes: number) => {
        const out = join(privateDir, `${preset}.unsealed`);
        const t = await timed(() => unsealModelFile(sealedPath, out, key, expected, { parallelHashMinBytes }));
        if (t.value.plaintextSha256 !== hash.value) throw new Error("unsealed model differs");
        await rm(out, { force: true });
        return t;
      };
      // ABAB, best of two each: the machine's noise is larger than the difference.
      const single = [await unseal(Number.MAX_SAFE_INTEGER)];
      const worker = [await unseal(0)];
      single.push(await unseal(Number.MAX_SAFE_INTEGER));
      worker.push(await unseal(0));
      const best = (runs: { ms: number }[]) => Math.min(...runs.map((r) => r.ms));
      console.log(
        `| ${preset} f16 | ${(bytes / 2 ** 20).toFixed(0)} | ${mbps(bytes, hash.ms)} | ${mbps(bytes, seal.ms)} | ${mbps(bytes, best(single))} | ${mbps(bytes, best(worker))} | ${Math.max(...[...single, ...worker].map((r) => r.rssMb)).toFixed(0)} |`,
      );
      await Promise.all([plain, sealedPath].map((p) => rm(p, { force: true })));
    }
  } finally {
    await rm(privateDir, { recursive: true, force: true });
  }

  // 2. Key release over HTTP on loopback, and 3. boot plain vs sealed.
  const operator = await generateManifestSigningKey("EdDSA");
  const tinyPath = join(dir, "tiny.gguf");
  await writeTinyModel(tinyPath);
  const tinySealed = join(dir, "tiny.sealed");
  const sealed = await sealModelFile(tinyPath, tinySealed, key);
  const policy = simulatorClientPolicy({
    tee: "sim-snp",
    measurement: toHex(await simulatedMeasurement("sim-snp")),
    operatorKey: operator.publicJwk,
    modelSha256: sealed.sha256,
    serviceName: devManifest().service.name,
  });
  const server = await listen(
    // One client (loopback) asking as often as the benchmark does: its one budget is that high.
    createBrokerApp(new KeyBroker([{ keyId: key.keyId, key: key.key, policy }]), () => {}, {
      challengesPerMinute: 100_000,
      releasesPerMinute: 100_000,
      maxClients: 1,
    }).fetch,
    "127.0.0.1",
    0,
  );
  const inference = { threads: 1, sequences: 1 };
  const sealedManifest = await signManifest(
    devManifest({
      model: { sha256: sealed.sha256, sizeBytes: sealed.sizeBytes, sealedAtRest: true, keyId: key.keyId },
      inference,
    }),
    operator.privateJwk,
  );
  const plainManifest = await signManifest(devManifest({ inference }), operator.privateJwk);
  const boot = (sealedModel: boolean) =>
    Enclave.boot({
      manifestJws: sealedModel ? sealedManifest : plainManifest,
      operatorKeys: [operator.publicJwk],
      modelPath: sealedModel ? tinySealed : tinyPath,
      tee: "sim-snp",
      ...(sealedModel ? { kbsUrl: server.url } : {}),
    });
  try {
    const enclave = await boot(true);
    // The enclave's side of the protocol, spelled out (enclave/model-key.ts opens the box with the
    // boot's secret key, which only the enclave holds): challenge, nonce answer, release.
    const release = (cold: boolean) =>
      timed(async () => {
        if (cold) clearVerifiedDocumentCache();
        const post = async (path: string, body: unknown) => {
          const response = await fetch(`${server.url}${path}`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify(body),
          });
          if (!response.ok) throw new Error(`${path}: HTTP ${response.status} ${await response.text()}`);
          return (await response.json()) as Record<string, unknown>;
        };
        const { challenge } = (await post("/v1/kbs/challenge", {})) as { challenge: string };
        const answer = await enclave.answerNonce(base64url.decode(challenge));
        const { wrapped } = await post("/v1/kbs/release", {
          keyId: key.keyId,
          document: enclave.document,
          challenge,
          answer,
        });
        if (typeof wrapped !== "object" || wrapped === null) throw new Error("no wrapped key");
      });
    await enclave.close();
    const cold: number[] = [];
    const warm: number[] = [];
    for (let i = 0; i < 20; i++) cold.push((await release(true)).ms);
    for (let i = 0; i < 20; i++) warm.push((await release(false)).ms);
    console.log("\n## key release over HTTP on loopback (challenge + nonce answer + release), 20 each\n");
    console.log("| document verification | median ms | p90 ms |");
    console.log("| --- | ---: | ---: |");
    console.log(`| cold (full evidence chain) | ${median(cold).toFixed(2)} | ${p90(cold).toFixed(2)} |`);
    console.log(`| warm (already-verified document) | ${median(warm).toFixed(2)} | ${p90(warm).toFixed(2)} |`);

    const plainBoots: number[] = [];
    const sealedBoots: number[] = [];
    for (let i = 0; i < 5; i++) {
      for (const [sealedModel, into] of [
        [false, plainBoots],
        [true, sealedBoots],
      ] as const) {
        const t = await timed(() => boot(sealedModel));
        into.push(t.ms);
        await t.value.close();
      }
    }
    console.log("\n## enclave boot, tiny model (5.5 MiB), sim-snp, 5 each (ABAB)\n");
    console.log("| model | median ms | p90 ms |");
    console.log("| --- | ---: | ---: |");
    console.log(`| plain | ${median(plainBoots).toFixed(1)} | ${p90(plainBoots).toFixed(1)} |`);
    console.log(
      `| sealed (key from the broker, unsealed into /dev/shm) | ${median(sealedBoots).toFixed(1)} | ${p90(sealedBoots).toFixed(1)} |`,
    );
  } finally {
    await server.close();
  }
} finally {
  clearInterval(sampler);
  await rm(dir, { recursive: true, force: true });
}
