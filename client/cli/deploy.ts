/**
 * A local simulated deployment for `cloister up` and `cloister demo`: it prepares the files a real
 * operator would (tiny model, operator key, signed manifest, API key, client policy) under
 * `.cloister/`, then starts the enclave and the host as two separate processes on loopback, so
 * the host process never loads enclave or sealing code.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { JWK } from "jose";
import { toHex } from "../../attestation/bytes.ts";
import { simulatedMeasurement } from "../../enclave/tee.ts";
import { hashApiKey } from "../../host/identity.ts";
import { devManifest } from "../../manifests/dev.ts";
import { generateManifestSigningKey, signManifest } from "../../manifests/sign.ts";
import { sha256File } from "../../models/hash.ts";
import { TINY_MODEL_SHA256, writeTinyModel } from "../../models/tiny.ts";
import { simulatorClientPolicy } from "../dev-policy.ts";
import type { ClientPolicy } from "../policy.ts";

const CLI = fileURLToPath(new URL("../../bin/cloister.js", import.meta.url));

export type SimulatedTee = "sim-snp" | "sim-tdx";

export interface DeploymentFiles {
  readonly dir: string;
  readonly modelPath: string;
  readonly manifestPath: string;
  readonly operatorPublicKeyPath: string;
  readonly apiKeysPath: string;
  readonly apiKeyPath: string;
  readonly apiKey: string;
  readonly policyPath: string;
  readonly policy: ClientPolicy;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function writePrivate(path: string, text: string): Promise<void> {
  await writeFile(path, text, { mode: 0o600 });
  await chmod(path, 0o600);
}

/** Makes (or reuses) everything a simulated deployment needs under `dir`. */
export async function prepareDeployment(options: {
  dir: string;
  tee: SimulatedTee;
  threads: number;
  progress: (line: string) => void;
}): Promise<DeploymentFiles> {
  const dir = resolve(options.dir);
  await mkdir(join(dir, "models"), { recursive: true, mode: 0o700 });

  const modelPath = join(dir, "models", "tiny.gguf");
  if (!(await exists(modelPath)) || (await sha256File(modelPath)) !== TINY_MODEL_SHA256) {
    options.progress("making the tiny model (deterministic, offline)");
    const made = await writeTinyModel(modelPath);
    if (made.sha256 !== TINY_MODEL_SHA256) {
      throw new Error(`tiny model: expected sha256 ${TINY_MODEL_SHA256}, produced ${made.sha256}`);
    }
  }

  const privatePath = join(dir, "operator.private.jwk");
  const operatorPublicKeyPath = join(dir, "operator.public.jwk");
  let publicJwk: JWK;
  let privateJwk: JWK;
  if ((await exists(privatePath)) && (await exists(operatorPublicKeyPath))) {
    privateJwk = JSON.parse(await readFile(privatePath, "utf8")) as JWK;
    publicJwk = JSON.parse(await readFile(operatorPublicKeyPath, "utf8")) as JWK;
  } else {
    const pair = await generateManifestSigningKey("EdDSA");
    privateJwk = pair.privateJwk;
    publicJwk = pair.publicJwk;
    await writePrivate(privatePath, JSON.stringify(privateJwk));
    await writeFile(operatorPublicKeyPath, `${JSON.stringify(publicJwk, null, 2)}\n`);
  }

  const manifest = devManifest({ inference: { threads: options.threads } });
  const manifestPath = join(dir, "manifest.jws");
  await writeFile(manifestPath, await signManifest(manifest, privateJwk));

  const apiKeyPath = join(dir, "api-key");
  let apiKey: string;
  if (await exists(apiKeyPath)) apiKey = (await readFile(apiKeyPath, "utf8")).trim();
  else {
    apiKey = `ck_${randomBytes(24).toString("hex")}`;
    await writePrivate(apiKeyPath, `${apiKey}\n`);
  }
  const apiKeysPath = join(dir, "api-keys.json");
  await writeFile(
    apiKeysPath,
    `${JSON.stringify(
      {
        version: 1,
        keys: [
          {
            id: "local-dev",
            project: "local",
            sha256: hashApiKey(apiKey),
            permissions: ["attest", "chat", "complete"],
            requestsPerMinute: 600,
          },
        ],
      },
      null,
      2,
    )}\n`,
  );

  const policy = simulatorClientPolicy({
    tee: options.tee,
    measurement: toHex(await simulatedMeasurement(options.tee)),
    operatorKey: publicJwk,
    modelSha256: manifest.model.sha256,
    serviceName: manifest.service.name,
  });
  const policyPath = join(dir, "policy.json");
  await writeFile(policyPath, `${JSON.stringify(policy, null, 2)}\n`);

  return { dir, modelPath, manifestPath, operatorPublicKeyPath, apiKeysPath, apiKeyPath, apiKey, policyPath, policy };
}

interface Child {
  readonly process: ChildProcess;
  readonly ready: Promise<{ url: string }>;
}

/** Starts `cloister ARGS` and resolves with its `{"event":"ready"}` line. */
function startChild(name: string, args: readonly string[], stderr: (line: string) => void): Child {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  createInterface({ input: child.stderr! }).on("line", (line) => stderr(`[${name}] ${line}`));
  const ready = new Promise<{ url: string }>((resolveReady, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on("line", (line) => {
      try {
        const event = JSON.parse(line) as { event?: string; url?: string };
        if (event.event === "ready" && typeof event.url === "string") {
          resolveReady({ url: event.url });
          return;
        }
      } catch {
        // not a JSON line: passed on below
      }
      // Anything else a child prints on stdout goes to the log too, never silently dropped.
      stderr(`[${name}:stdout] ${line}`);
    });
    child.once("exit", (code, signal) =>
      reject(new Error(`${name} exited before it was ready (${signal ?? `exit code ${code}`})`)),
    );
    child.once("error", reject);
  });
  return { process: child, ready };
}

async function stopChild(child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((done) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("exit", () => {
      clearTimeout(timer);
      done();
    });
    child.kill("SIGTERM");
  });
}

export interface RunningDeployment {
  readonly files: DeploymentFiles;
  readonly hostUrl: string;
  readonly enclaveUrl: string;
  /** Resolves when either process exits on its own (not through stopEnclave/restartEnclave/stop). */
  readonly exited: Promise<string>;
  /** Stops the enclave process only; the host keeps running (and reports the enclave unreachable). */
  stopEnclave(): Promise<void>;
  /** Stops the enclave if it runs and boots a new one (fresh keys) on the same port. */
  restartEnclave(): Promise<void>;
  stop(): Promise<void>;
}

export async function startDeployment(options: {
  files: DeploymentFiles;
  tee: SimulatedTee;
  hostPort: number;
  enclavePort: number;
  log: (line: string) => void;
  /** `cloister enclave --frame-interval-ms`; absent: the enclave's default. */
  frameIntervalMs?: number;
  /** `cloister host --cors-origin`, each; absent: none. */
  corsOrigins?: readonly string[];
}): Promise<RunningDeployment> {
  const { files } = options;
  const enclaveArgs = (port: number) => [
    "enclave",
    "--manifest",
    files.manifestPath,
    "--operator-key",
    files.operatorPublicKeyPath,
    "--model",
    files.modelPath,
    "--tee",
    options.tee,
    "--port",
    String(port),
    ...(options.frameIntervalMs === undefined ? [] : ["--frame-interval-ms", String(options.frameIntervalMs)]),
  ];
  let resolveExited: (who: string) => void = () => {};
  const exited = new Promise<string>((r) => {
    resolveExited = r;
  });
  // Exits we caused (stopEnclave, restartEnclave, stop) are not reported through `exited`.
  const expectedExits = new Set<ChildProcess>();
  const watch = (who: string, child: ChildProcess) =>
    child.once("exit", () => {
      if (!expectedExits.has(child)) resolveExited(who);
    });
  const stopExpected = (child: ChildProcess) => {
    expectedExits.add(child);
    return stopChild(child);
  };

  let enclave = startChild("enclave", enclaveArgs(options.enclavePort), options.log);
  let host: Child | undefined;
  const stop = async () => {
    await Promise.all([
      host === undefined ? Promise.resolve() : stopExpected(host.process),
      stopExpected(enclave.process),
    ]);
  };
  try {
    const enclaveReady = await enclave.ready;
    const enclavePort = Number(new URL(enclaveReady.url).port);
    watch("enclave", enclave.process);
    host = startChild(
      "host",
      [
        "host",
        "--enclave-url",
        enclaveReady.url,
        "--api-keys",
        files.apiKeysPath,
        "--audit-dir",
        join(files.dir, "audit"),
        "--port",
        String(options.hostPort),
        ...(options.corsOrigins ?? []).flatMap((origin) => ["--cors-origin", origin]),
      ],
      options.log,
    );
    const hostReady = await host.ready;
    watch("host", host.process);
    const stopEnclave = () => stopExpected(enclave.process);
    const restartEnclave = async () => {
      await stopEnclave();
      enclave = startChild("enclave", enclaveArgs(enclavePort), options.log);
      await enclave.ready;
      watch("enclave", enclave.process);
    };
    return {
      files,
      hostUrl: hostReady.url,
      enclaveUrl: enclaveReady.url,
      exited,
      stopEnclave,
      restartEnclave,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
