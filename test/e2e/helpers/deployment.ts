/**
 * One real simulated deployment per e2e test file: the enclave and the host as child processes on
 * 127.0.0.1 (ports chosen by the OS), files in a fresh temporary directory (never the developer's
 * `.cloister/`), one inference thread (the test machine has 2 cores). Every line either child
 * writes (stdout and stderr) is kept in `logs`, so tests can assert what the host did and did not
 * print.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { toHex } from "../../../attestation/bytes.ts";
import {
  type DeploymentFiles,
  prepareDeployment,
  type RunningDeployment,
  type SimulatedTee,
  startDeployment,
} from "../../../client/cli/deploy.ts";
import { simulatedMeasurement } from "../../../enclave/tee.ts";

export interface E2eDeployment {
  readonly tee: SimulatedTee;
  readonly dir: string;
  readonly files: DeploymentFiles;
  readonly running: RunningDeployment;
  /** Every line the children wrote, prefixed `[host]`, `[enclave]`, `[host:stdout]`, `[enclave:stdout]`. */
  readonly logs: string[];
  /** Parsed access-log records of the host, in the order written. */
  hostAccessLog(): HostAccessRecord[];
  /** Resolves once `predicate` holds for a log line (checked on every new line), or fails after `timeoutMs`. */
  waitForLog(predicate: (line: string) => boolean, timeoutMs?: number): Promise<string>;
  /**
   * Fails with a clear message when the measured enclave sources changed since the policy was
   * written (someone edited enclave/, attestation/, sealed/, models/ or manifests/ while the test
   * ran): an enclave booted now measures differently, and the client rightly refuses it.
   */
  assertSourcesUnchanged(): Promise<void>;
  /** True when a child has exited without being asked to. */
  crashed(): Promise<string | null>;
  stop(): Promise<void>;
}

export interface HostAccessRecord {
  readonly type: "access";
  readonly method: string;
  readonly path: string;
  readonly status: number;
  readonly keyId: string | null;
  /** The pool member a sealed request went to (host/access-log.ts); null for any other request. */
  readonly member: number | null;
  readonly requestBytes: number;
  readonly responseBytes: number;
  readonly outcome: string;
}

/** Whether the policy in `files` allows the launch measurement `measurement` (hex). */
function policyAllows(files: DeploymentFiles, tee: SimulatedTee, measurement: string): boolean {
  const allowed = tee === "sim-snp" ? files.policy.attestation.snp?.measurements : files.policy.attestation.tdx?.mrtd;
  return Array.isArray(allowed) && allowed.includes(measurement);
}

const currentMeasurement = async (tee: SimulatedTee) => toHex(await simulatedMeasurement(tee));

export async function bootDeployment(
  tee: SimulatedTee = "sim-snp",
  options: { corsOrigins?: readonly string[]; enclaves?: number; poolRefreshMs?: number } = {},
): Promise<E2eDeployment> {
  const dir = await mkdtemp(join(tmpdir(), `cloister-e2e-${tee}-`));
  const logs: string[] = [];
  const waiters = new Set<() => void>();
  const log = (line: string) => {
    logs.push(line);
    for (const waiter of waiters) waiter();
  };
  let booted: { files: DeploymentFiles; running: RunningDeployment } | undefined;
  try {
    // The policy pins the measurement of the sources as they are when it is written; the enclave
    // measures them again as it boots. In a shared checkout someone may edit a measured file in
    // between: then (and only then) start over, so the suite tests the product, not that race.
    for (let attempt = 1; booted === undefined; attempt++) {
      const files = await prepareDeployment({ dir, tee, threads: 1, progress: () => {} });
      // One frame per token (no pacing): these tests tamper with, count and reorder single frames.
      const running = await startDeployment({
        files,
        tee,
        hostPort: 0,
        enclavePort: 0,
        log,
        frameIntervalMs: 0,
        ...(options.corsOrigins === undefined ? {} : { corsOrigins: options.corsOrigins }),
        ...(options.enclaves === undefined ? {} : { enclaves: options.enclaves }),
        ...(options.poolRefreshMs === undefined ? {} : { poolRefreshMs: options.poolRefreshMs }),
      });
      if (attempt === 3 || policyAllows(files, tee, await currentMeasurement(tee))) booted = { files, running };
      else await running.stop();
    }
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`e2e deployment (${tee}) did not start; child output:\n${logs.join("\n")}`, { cause: error });
  }
  const { files, running } = booted;
  let exitedOnItsOwn: string | null = null;
  void running.exited.then((who) => {
    exitedOnItsOwn = who;
  });

  return {
    tee,
    dir,
    files,
    running,
    logs,
    hostAccessLog() {
      const records: HostAccessRecord[] = [];
      for (const line of logs) {
        if (!line.startsWith("[host] {")) continue;
        const record = JSON.parse(line.slice("[host] ".length)) as { type?: string };
        if (record.type === "access") records.push(record as HostAccessRecord);
      }
      return records;
    },
    waitForLog(predicate, timeoutMs = 5_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = logs.find(predicate);
          if (found === undefined) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(found);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no matching log line within ${timeoutMs} ms; last lines:\n${logs.slice(-10).join("\n")}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async assertSourcesUnchanged() {
      const now = await currentMeasurement(tee);
      if (!policyAllows(files, tee, now)) {
        throw new Error(
          `the measured enclave sources changed while this test ran (the tree now measures ${now}, not what the policy pins); rerun on an unchanged tree`,
        );
      }
    },
    async crashed() {
      // Let already-queued exit events run before answering.
      await new Promise((r) => setTimeout(r, 50));
      return exitedOnItsOwn;
    },
    async stop() {
      try {
        await running.stop();
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
}

/** The `--url --policy --api-key-file` arguments of the client commands for this deployment. */
export function connectionArgs(deployment: E2eDeployment, policyPath: string): string[] {
  return ["--url", deployment.running.hostUrl, "--policy", policyPath, "--api-key-file", deployment.files.apiKeyPath];
}

/** `cloister policy init` against this deployment, with its operator key and API key. */
export function policyInitArgs(deployment: E2eDeployment): string[] {
  return [
    "policy",
    "init",
    "--url",
    deployment.running.hostUrl,
    "--operator-key",
    deployment.files.operatorPublicKeyPath,
    "--api-key-file",
    deployment.files.apiKeyPath,
  ];
}

/** Writes (under the deployment's directory) a copy of its SNP policy that pins another launch measurement. */
export async function writeWrongMeasurementPolicy(deployment: E2eDeployment, name: string): Promise<string> {
  const bad = structuredClone(deployment.files.policy) as unknown as {
    attestation: { snp: { measurements: string[] } };
  };
  bad.attestation.snp.measurements = ["cd".repeat(48)];
  const path = join(deployment.dir, name);
  await writeFile(path, JSON.stringify(bad, null, 2));
  return path;
}
