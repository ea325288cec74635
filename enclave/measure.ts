/**
 * Computes the simulated launch measurement of THIS enclave build: SHA-256 of each of its own
 * source files plus its configuration bytes, combined by `simulatedLaunchMeasurement`
 * (attestation/sim/measurement.ts). In simulator mode this value goes into the simulated SNP
 * MEASUREMENT / TDX MRTD, so editing any measured file (or the configuration) changes what a
 * client's allow-list must contain.
 *
 * Measured: every file the enclave process can load from this repository. That is every `.ts` and
 * `.json` file under enclave/, attestation/, sealed/, models/, manifests/ and client/ (recursively;
 * test files live in test/ and are not measured); the command's entry point bin/cloister.js; host/cli.ts,
 * whose option declarations the command dispatcher loads for every command, the enclave's too;
 * package.json and tsconfig.json, which steer how Node.js and tsx resolve and compile modules; and
 * package-lock.json, which pins every dependency the enclave loads. test/attestation/
 * sim-measurement.test.ts checks that everything the enclave's import graph reaches is measured.
 * Paths are relative to the repository root, '/'-separated.
 * Not measured: the rest of host/ (the untrusted forwarder, which the enclave never loads),
 * node_modules itself (pinned through the lockfile's integrity hashes), the model file (bound
 * separately through the manifest digest in REPORT_DATA), Node.js itself.
 */
import { readdir, readFile } from "node:fs/promises";
import { join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { sha256 } from "../attestation/crypto.ts";
import { ConfigurationError } from "../attestation/errors.ts";
import { type MeasuredFile, simulatedLaunchMeasurement } from "../attestation/sim/measurement.ts";

/** Top-level folders whose `.ts` files are measured. */
export const MEASURED_FOLDERS: readonly string[] = [
  "enclave",
  "attestation",
  "sealed",
  "models",
  "manifests",
  "client",
];
/** Single files measured in addition. */
export const MEASURED_FILES: readonly string[] = [
  "bin/cloister.js",
  "host/cli.ts",
  "package.json",
  "tsconfig.json",
  "package-lock.json",
];

/** The repository root this module belongs to. */
export const REPOSITORY_ROOT = fileURLToPath(new URL("..", import.meta.url));

async function listMeasured(root: string, folder: string): Promise<string[]> {
  const out: string[] = [];
  let entries: import("node:fs").Dirent[];
  try {
    entries = await readdir(join(root, folder), { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return out;
    throw error;
  }
  for (const entry of entries) {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) {
      if (entry.name === "node_modules") continue;
      out.push(...(await listMeasured(root, path)));
    } else if (entry.isFile() && (entry.name.endsWith(".ts") || entry.name.endsWith(".json"))) {
      out.push(path);
    }
  }
  return out;
}

/** The measured files of the tree at `root`, with their SHA-256, sorted by path. */
export async function enclaveMeasuredFiles(root: string = REPOSITORY_ROOT): Promise<MeasuredFile[]> {
  const paths: string[] = [];
  for (const folder of MEASURED_FOLDERS) paths.push(...(await listMeasured(root, folder)));
  for (const file of MEASURED_FILES) paths.push(file);
  if (paths.length === MEASURED_FILES.length) {
    throw new ConfigurationError(
      "MEASUREMENT_NO_SOURCES",
      `enclave measurement: no .ts or .json files under ${MEASURED_FOLDERS.join(", ")} in ${root}`,
    );
  }
  const files: MeasuredFile[] = [];
  for (const path of paths) {
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await readFile(join(root, path)));
    } catch (error) {
      throw new ConfigurationError("MEASUREMENT_FILE_UNREADABLE", `enclave measurement: cannot read ${path}`, {
        cause: error,
      });
    }
    files.push({ path: relative(root, join(root, path)).split(sep).join("/"), sha256: await sha256(bytes) });
  }
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return files;
}

/** The 48-byte simulated launch measurement of the enclave at `root` with configuration `config`. */
export async function measureEnclave(options: { readonly config: Uint8Array; readonly root?: string }): Promise<{
  readonly measurement: Uint8Array;
  readonly files: readonly MeasuredFile[];
}> {
  const files = await enclaveMeasuredFiles(options.root ?? REPOSITORY_ROOT);
  return { measurement: await simulatedLaunchMeasurement({ files, config: options.config }), files };
}
