/**
 * The simulated launch measurement: what the simulator writes into SNP MEASUREMENT (and TDX MRTD).
 * On hardware the launch digest covers the initial guest image; the simulator's stands in for it
 * by covering the enclave's own code and configuration, so changing either changes the measurement
 * and a policy's allow-list pins an exact build (see enclave/measure.ts for which files).
 *
 * Encoding (all lengths u32 big-endian), then SHA-384:
 *   "cloister/simulated-launch-measurement/v1" (length-prefixed)
 *   file count, then for each file in byte order of its UTF-8 path:
 *     path length ‖ path (UTF-8, relative, '/'-separated) ‖ SHA-256 of the contents (32 bytes)
 *   config length ‖ config bytes
 * The list is sorted here, so the order in which files are listed does not matter; paths must be
 * unique, so no two listings of different trees encode alike.
 */
import { bytesEqual, concatBytes } from "../bytes.ts";
import { sha384 } from "../crypto.ts";
import { ConfigurationError } from "../errors.ts";

export const SIMULATED_MEASUREMENT_DOMAIN = "cloister/simulated-launch-measurement/v1";

export interface MeasuredFile {
  /** Relative path with '/' separators, e.g. "enclave/boot.ts". */
  readonly path: string;
  /** SHA-256 of the file's bytes (32 bytes). */
  readonly sha256: Uint8Array;
}

const encoder = new TextEncoder();

function u32(n: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n);
  return out;
}

function lengthPrefixed(bytes: Uint8Array): Uint8Array {
  return concatBytes(u32(bytes.length), bytes);
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return (a[i] as number) - (b[i] as number);
  return a.length - b.length;
}

function checkPath(path: string): void {
  const bad =
    path.length === 0 ||
    path.startsWith("/") ||
    path.includes("\\") ||
    path.includes("\u0000") ||
    path.split("/").some((part) => part === "" || part === "." || part === "..");
  if (bad) {
    throw new ConfigurationError(
      "MEASUREMENT_BAD_PATH",
      `simulated measurement: path "${path}" must be relative, '/'-separated, without empty, "." or ".." parts`,
    );
  }
}

/** SHA-384 (48 bytes) over the canonical encoding of `files` and `config` (see module comment). */
export async function simulatedLaunchMeasurement(input: {
  readonly files: readonly MeasuredFile[];
  readonly config: Uint8Array;
}): Promise<Uint8Array> {
  const entries = input.files.map((f) => {
    checkPath(f.path);
    if (!(f.sha256 instanceof Uint8Array) || f.sha256.length !== 32) {
      throw new ConfigurationError(
        "MEASUREMENT_BAD_DIGEST",
        `simulated measurement: file "${f.path}": expected a 32-byte SHA-256, found ${f.sha256 instanceof Uint8Array ? `${f.sha256.length} bytes` : typeof f.sha256}`,
      );
    }
    return { path: encoder.encode(f.path), name: f.path, sha256: f.sha256 };
  });
  entries.sort((a, b) => compareBytes(a.path, b.path));
  for (let i = 1; i < entries.length; i++) {
    if (bytesEqual((entries[i - 1] as (typeof entries)[number]).path, (entries[i] as (typeof entries)[number]).path)) {
      throw new ConfigurationError(
        "MEASUREMENT_DUPLICATE_PATH",
        `simulated measurement: path "${(entries[i] as (typeof entries)[number]).name}" is listed twice`,
      );
    }
  }
  const parts: Uint8Array[] = [lengthPrefixed(encoder.encode(SIMULATED_MEASUREMENT_DOMAIN)), u32(entries.length)];
  for (const e of entries) parts.push(lengthPrefixed(e.path), e.sha256);
  parts.push(lengthPrefixed(input.config));
  return sha384(concatBytes(...parts));
}
