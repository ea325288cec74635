/**
 * Evidence from the Linux configfs-tsm report interface (`/sys/kernel/config/tsm/report`, Linux
 * ≥ 6.7 with CONFIG_TSM_REPORTS, and the sev-guest or tdx-guest driver). One request:
 *
 *   mkdir <root>/<unique name>           the kernel creates the attribute files
 *   read provider                        "sev_guest" or "tdx_guest"
 *   read generation                      g0
 *   read privlevel_floor (SNP, if no level was given)
 *   write privlevel (SNP: the level given, or the floor when above 0; each write bumps generation)
 *   write inblob                         the 64-byte REPORT_DATA
 *   read generation, outblob, auxblob, generation
 *   rmdir                                always, also on failure
 *
 * Every attribute is read to a bound (TSM_BLOB_MAX_BYTES, TSM_TEXT_MAX_BYTES): a file larger is not
 * one the kernel shows, and is refused rather than held whole.
 *
 * Any other writer on the same entry changes `generation`; then the report may have been made
 * for someone else's inblob, so it is discarded and the request is retried on a fresh entry, a
 * bounded number of times. This module runs inside the enclave and uses node:fs (through an
 * injectable file-system interface, so tests drive a kernel emulator in a temporary directory).
 * It does not parse or verify the report: see attestation/snp and attestation/tdx.
 */
import * as nodeFs from "node:fs/promises";
import { join } from "node:path";
import { readHandleToBound } from "../bounded-read.ts";
import { toHex } from "../bytes.ts";
import { randomBytes } from "../crypto.ts";
import { ConfigurationError, EvidenceError } from "../errors.ts";
import { EMPTY_SNP_CERTIFICATE_TABLE, parseSnpCertificateTable } from "./snp-cert-table.ts";
import { type RawSnpEvidence, type RawTdxEvidence, REPORT_DATA_SIZE, type TeeEvidenceProvider } from "./types.ts";

export const DEFAULT_TSM_REPORT_ROOT = "/sys/kernel/config/tsm/report";
export const DEFAULT_TSM_MAX_ATTEMPTS = 3;

/** The VM a cloud gives configfs-tsm in, and Azure's, which has none (its paravisor answers through the vTPM). */
const CLOUD_VM_REQUIREMENT =
  "on GCP, a Confidential VM created with --confidential-compute-type=SEV_SNP (N2D) or TDX (C3, A3 a3-highgpu-1g); " +
  "an Azure confidential VM takes --tee azure-snp or azure-tdx instead";

const KERNEL_REQUIREMENT =
  "configfs-tsm needs Linux >= 6.7 built with CONFIG_TSM_REPORTS, the sev-guest or tdx-guest driver loaded, " +
  "and configfs mounted at /sys/kernel/config (mount -t configfs none /sys/kernel/config); " +
  CLOUD_VM_REQUIREMENT;

/** The file operations the provider needs; node:fs/promises by default, an emulator in tests. */
export interface TsmFileSystem {
  isDirectory(path: string): Promise<boolean>;
  mkdir(path: string): Promise<void>;
  rmdir(path: string): Promise<void>;
  /**
   * The file's bytes, at most maxBytes + 1 of them (more than maxBytes: the file is larger), so a
   * file the kernel never shows (a sysfs or configfs text attribute is one page at most, a report
   * blob 32 KiB) is not held whole.
   */
  readFile(path: string, maxBytes: number): Promise<Uint8Array>;
  writeFile(path: string, data: Uint8Array): Promise<void>;
}

export const nodeTsmFileSystem: TsmFileSystem = {
  async isDirectory(path) {
    try {
      return (await nodeFs.stat(path)).isDirectory();
    } catch {
      return false;
    }
  },
  mkdir: async (path) => {
    await nodeFs.mkdir(path);
  },
  rmdir: (path) => nodeFs.rmdir(path),
  readFile: async (path, maxBytes) => {
    const handle = await nodeFs.open(path, "r");
    try {
      return new Uint8Array(await readHandleToBound(handle, maxBytes));
    } finally {
      await handle.close();
    }
  },
  writeFile: (path, data) => nodeFs.writeFile(path, data),
};

/**
 * The most bytes read of `outblob` or `auxblob`: the kernel caps each at 32 KiB (TSM_OUTBLOB_MAX),
 * so twice that leaves room for a kernel that raises the cap while still refusing a file that is no
 * report (TSM_BLOB_TOO_LARGE).
 */
const TSM_BLOB_MAX_BYTES = 64 * 1024;
/** The most bytes read of `provider`, `generation` or `privlevel_floor`: a short name or number and a newline. */
const TSM_TEXT_MAX_BYTES = 32;

export type TsmProviderName = "sev_guest" | "tdx_guest";

const PROVIDER_BY_KIND = { snp: "sev_guest", tdx: "tdx_guest" } as const satisfies Record<string, TsmProviderName>;

export interface ConfigfsTsmOptions {
  readonly kind: "snp" | "tdx";
  /** Default /sys/kernel/config/tsm/report. */
  readonly root?: string;
  readonly fs?: TsmFileSystem;
  /**
   * SNP only: the VMPL to request the report for (0..3). When absent, the entry's `privlevel_floor`
   * is written if it is above 0: the kernel sets that floor to the VMPL whose key the guest holds,
   * and refuses a report for a lower level (a guest under an SVSM runs above VMPL 0).
   */
  readonly privlevel?: number;
  /** Attempts before a persistent concurrent writer is reported (default 3, at most 16). */
  readonly maxAttempts?: number;
  /** Entry directory name; default `cloister-<random hex>`. */
  readonly entryName?: () => string;
}

/** The raw outcome of one successful configfs-tsm request. */
export interface TsmReport {
  readonly provider: TsmProviderName;
  readonly outblob: Uint8Array;
  /** null when the provider has no auxblob (TDX) or it was empty. */
  readonly auxblob: Uint8Array | null;
  readonly generation: number;
  /** How many entries were needed (1 unless a concurrent writer was detected). */
  readonly attempts: number;
}

export function errnoOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** The error `action` on `path` failing with `error` is reported as (detectTee's too, for a refused probe entry). */
export function ioError(error: unknown, action: string, path: string): EvidenceError {
  const errno = errnoOf(error) ?? "unknown error";
  if (errno === "EACCES" || errno === "EPERM") {
    return new EvidenceError(
      "TSM_PERMISSION_DENIED",
      `configfs-tsm: ${action} ${path}: expected permission, found ${errno} (run the enclave as root or grant write access to the tsm report directory)`,
      { cause: error },
    );
  }
  if ((errno === "EINVAL" || errno === "EFBIG") && action === "read") {
    // Reading outblob/auxblob makes the report: the provider refused the request written.
    return new EvidenceError(
      "TSM_READ_REJECTED",
      `configfs-tsm: read ${path}: expected the provider to make a report for the request written, found ${errno}`,
      { cause: error },
    );
  }
  if (errno === "EINVAL" || errno === "EFBIG") {
    return new EvidenceError(
      "TSM_WRITE_REJECTED",
      `configfs-tsm: ${action} ${path}: expected the kernel to accept the value, found ${errno}`,
      { cause: error },
    );
  }
  if (errno === "EROFS") {
    // configfs itself is writable: a read-only mount over it is the service manager's doing, or a
    // container's (a read-only volume of the node's configfs, as a pod is given it).
    return new EvidenceError(
      "TSM_IO_ERROR",
      `configfs-tsm: ${action} ${path}: expected a writable report directory, found ${errno} (mounted read-only: ` +
        "systemd's ProtectKernelTunables=yes does so, leave it out or add ReadWritePaths=/sys/kernel/config/tsm/report; " +
        "in a container, mount it read-write)",
      { cause: error },
    );
  }
  return new EvidenceError("TSM_IO_ERROR", `configfs-tsm: ${action} ${path}: failed with ${errno}`, { cause: error });
}

/** No TSM provider driver is registered: the kernel answers ENXIO (ENOENT/ENODEV on reads of some kernels). */
function noProvider(error: unknown, action: string): EvidenceError {
  return new EvidenceError(
    "TSM_NO_PROVIDER",
    `configfs-tsm: ${action}: expected a TSM provider (sev_guest or tdx_guest), found ${errnoOf(error) ?? "unknown error"}: load the sev-guest or tdx-guest driver; ${CLOUD_VM_REQUIREMENT}`,
    { cause: error },
  );
}

function decodeText(bytes: Uint8Array): string {
  return new TextDecoder("utf-8", { fatal: false }).decode(bytes).trim();
}

/**
 * A text attribute (`provider`, `generation`, `privlevel_floor`), trimmed, read to
 * TSM_TEXT_MAX_BYTES; a larger one is `code`'s error (it is not what the kernel shows, whatever
 * its trimmed start reads as). Read errors are thrown as they are.
 */
async function readTextAttribute(fs: TsmFileSystem, path: string, code: string, expected: string): Promise<string> {
  const bytes = await fs.readFile(path, TSM_TEXT_MAX_BYTES);
  if (bytes.length > TSM_TEXT_MAX_BYTES) {
    throw new EvidenceError(
      code,
      `configfs-tsm: ${path}: expected ${expected}, found more than ${TSM_TEXT_MAX_BYTES} bytes`,
    );
  }
  return decodeText(bytes);
}

class GenerationRace extends Error {}

/**
 * Requests one report for `reportData` (exactly 64 bytes). Retries on a fresh entry when the
 * generation counter shows a concurrent writer, up to `maxAttempts`, then throws
 * TSM_GENERATION_RACE. Throws EvidenceError (TSM_UNAVAILABLE, TSM_NO_PROVIDER,
 * TSM_PROVIDER_MISMATCH, TSM_PERMISSION_DENIED, TSM_WRITE_REJECTED, TSM_READ_REJECTED, TSM_EMPTY_OUTBLOB,
 * TSM_BAD_GENERATION, TSM_BAD_PRIVLEVEL_FLOOR, TSM_BLOB_TOO_LARGE, TSM_IO_ERROR, TSM_CLEANUP_FAILED) or ConfigurationError for bad options.
 */
export async function requestTsmReport(reportData: Uint8Array, options: ConfigfsTsmOptions): Promise<TsmReport> {
  checkOptions(reportData, options);
  const fs = options.fs ?? nodeTsmFileSystem;
  const root = options.root ?? DEFAULT_TSM_REPORT_ROOT;
  const maxAttempts = options.maxAttempts ?? DEFAULT_TSM_MAX_ATTEMPTS;
  if (!(await fs.isDirectory(root))) {
    throw new EvidenceError(
      "TSM_UNAVAILABLE",
      `configfs-tsm: expected the directory ${root}, found none. ${KERNEL_REQUIREMENT}`,
    );
  }
  const inblob = new Uint8Array(reportData);
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    const name = options.entryName?.() ?? `cloister-${toHex(randomBytes(8))}`;
    try {
      const result = await oneAttempt(fs, join(root, name), inblob, options);
      return { ...result, attempts: attempt };
    } catch (error) {
      if (!(error instanceof GenerationRace)) throw error;
    }
  }
  throw new EvidenceError(
    "TSM_GENERATION_RACE",
    `configfs-tsm: expected the generation counter to change only through this request, found a concurrent writer in each of ${maxAttempts} attempts`,
  );
}

function checkOptions(reportData: Uint8Array, options: ConfigfsTsmOptions): void {
  if (reportData.length !== REPORT_DATA_SIZE) {
    throw new ConfigurationError(
      "REPORT_DATA_SIZE",
      `REPORT_DATA: expected ${REPORT_DATA_SIZE} bytes, found ${reportData.length}`,
    );
  }
  if (options.privlevel !== undefined) {
    if (options.kind !== "snp") {
      throw new ConfigurationError(
        "TSM_PRIVLEVEL_UNSUPPORTED",
        `privlevel: only SNP reports take a privilege level, found kind ${options.kind}`,
      );
    }
    if (!Number.isInteger(options.privlevel) || options.privlevel < 0 || options.privlevel > 3) {
      throw new ConfigurationError(
        "TSM_PRIVLEVEL_RANGE",
        `privlevel: expected an integer 0..3 (VMPL), found ${options.privlevel}`,
      );
    }
  }
  const attempts = options.maxAttempts;
  if (attempts !== undefined && (!Number.isInteger(attempts) || attempts < 1 || attempts > 16)) {
    throw new ConfigurationError("TSM_MAX_ATTEMPTS_RANGE", `maxAttempts: expected an integer 1..16, found ${attempts}`);
  }
}

/**
 * A numeric attribute: its text must match `pattern`, else `code` says what was expected. With
 * `ifMissing`, an attribute this kernel does not have (ENOENT) reads as that value.
 */
async function readNumber(
  fs: TsmFileSystem,
  path: string,
  pattern: RegExp,
  code: string,
  expected: string,
  ifMissing?: number,
): Promise<number> {
  let text: string;
  try {
    text = await readTextAttribute(fs, path, code, expected);
  } catch (error) {
    if (error instanceof EvidenceError) throw error;
    if (ifMissing !== undefined && errnoOf(error) === "ENOENT") return ifMissing;
    throw ioError(error, "read", path);
  }
  if (!pattern.test(text)) {
    throw new EvidenceError(
      code,
      `configfs-tsm: ${path}: expected ${expected}, found ${JSON.stringify(text.slice(0, 20))}`,
    );
  }
  return Number(text);
}

const readGeneration = (fs: TsmFileSystem, dir: string): Promise<number> =>
  readNumber(fs, join(dir, "generation"), /^\d{1,15}$/, "TSM_BAD_GENERATION", "a decimal counter");

async function readProvider(fs: TsmFileSystem, dir: string, expected: TsmProviderName): Promise<string> {
  const path = join(dir, "provider");
  let text: string;
  try {
    text = await readTextAttribute(fs, path, "TSM_PROVIDER_MISMATCH", `provider ${expected}`);
  } catch (error) {
    if (error instanceof EvidenceError) throw error;
    const errno = errnoOf(error);
    if (errno === "ENXIO" || errno === "ENOENT" || errno === "ENODEV") throw noProvider(error, `read ${path}`);
    throw ioError(error, "read", path);
  }
  if (text === "") {
    throw new EvidenceError(
      "TSM_NO_PROVIDER",
      `configfs-tsm: expected a TSM provider name in ${path}, found an empty file`,
    );
  }
  return text;
}

/**
 * The lowest privilege level the provider accepts (`privlevel_floor`; sev-guest: the VMPL of the
 * VMPCK key it uses), or 0 when the kernel has no such attribute.
 */
const readPrivlevelFloor = (fs: TsmFileSystem, dir: string): Promise<number> =>
  readNumber(fs, join(dir, "privlevel_floor"), /^[0-3]$/, "TSM_BAD_PRIVLEVEL_FLOOR", "a privilege level 0..3", 0);

async function oneAttempt(
  fs: TsmFileSystem,
  dir: string,
  inblob: Uint8Array,
  options: ConfigfsTsmOptions,
): Promise<Omit<TsmReport, "attempts">> {
  try {
    await fs.mkdir(dir);
  } catch (error) {
    // The kernel refuses to create a report entry while no provider driver is registered
    // (tsm_report_make_item returns ENXIO), so this, not the `provider` read, is where a guest
    // without sev-guest or tdx-guest fails.
    if (errnoOf(error) === "ENXIO") throw noProvider(error, `mkdir ${dir}`);
    if (errnoOf(error) === "ENOENT") {
      throw new EvidenceError(
        "TSM_UNAVAILABLE",
        `configfs-tsm: mkdir ${dir}: the report directory vanished. ${KERNEL_REQUIREMENT}`,
        {
          cause: error,
        },
      );
    }
    throw ioError(error, "mkdir", dir);
  }
  let outcome: { ok: true; value: Omit<TsmReport, "attempts"> } | { ok: false; error: unknown };
  try {
    outcome = { ok: true, value: await readEntry(fs, dir, inblob, options) };
  } catch (error) {
    outcome = { ok: false, error };
  }
  // Always remove the entry. A cleanup failure after a failed request must not hide the
  // request's own error, so it is only raised when everything else succeeded.
  try {
    await fs.rmdir(dir);
  } catch (error) {
    if (outcome.ok) {
      throw new EvidenceError(
        "TSM_CLEANUP_FAILED",
        `configfs-tsm: rmdir ${dir}: failed with ${errnoOf(error) ?? "unknown error"}`,
        {
          cause: error,
        },
      );
    }
  }
  if (!outcome.ok) throw outcome.error;
  return outcome.value;
}

async function readEntry(
  fs: TsmFileSystem,
  dir: string,
  inblob: Uint8Array,
  options: ConfigfsTsmOptions,
): Promise<Omit<TsmReport, "attempts">> {
  const expectedProvider = PROVIDER_BY_KIND[options.kind];
  const provider = await readProvider(fs, dir, expectedProvider);
  if (provider !== expectedProvider) {
    throw new EvidenceError(
      "TSM_PROVIDER_MISMATCH",
      `configfs-tsm: expected provider ${expectedProvider} for ${options.kind}, found ${JSON.stringify(provider.slice(0, 32))}`,
    );
  }
  const g0 = await readGeneration(fs, dir);
  let writes = 0;
  const privlevel = options.privlevel ?? (options.kind === "snp" ? await readPrivlevelFloor(fs, dir) : 0);
  if (options.privlevel !== undefined || privlevel > 0) {
    await write(fs, join(dir, "privlevel"), new TextEncoder().encode(`${privlevel}\n`));
    writes++;
  }
  await write(fs, join(dir, "inblob"), inblob);
  writes++;
  const before = await readGeneration(fs, dir);
  if (before !== g0 + writes) throw new GenerationRace();
  const outblob = await readBlob(fs, join(dir, "outblob"));
  // TDX has no auxblob attribute; an SNP host may supply no certificates.
  const aux = await readBlob(fs, join(dir, "auxblob"), { ifMissing: true });
  const auxblob = aux === null || aux.length === 0 ? null : aux;
  const after = await readGeneration(fs, dir);
  if (after !== before) throw new GenerationRace();
  if (outblob.length === 0) {
    throw new EvidenceError(
      "TSM_EMPTY_OUTBLOB",
      `configfs-tsm: ${join(dir, "outblob")}: expected a report, found 0 bytes`,
    );
  }
  return { provider: expectedProvider, outblob, auxblob, generation: after };
}

async function write(fs: TsmFileSystem, path: string, data: Uint8Array): Promise<void> {
  try {
    await fs.writeFile(path, data);
  } catch (error) {
    throw ioError(error, "write", path);
  }
}

/** A report blob, read to TSM_BLOB_MAX_BYTES (a larger one: TSM_BLOB_TOO_LARGE); null when missing and `ifMissing`. */
async function readBlob(fs: TsmFileSystem, path: string, options: { ifMissing: true }): Promise<Uint8Array | null>;
async function readBlob(fs: TsmFileSystem, path: string): Promise<Uint8Array>;
async function readBlob(fs: TsmFileSystem, path: string, options?: { ifMissing: true }): Promise<Uint8Array | null> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await fs.readFile(path, TSM_BLOB_MAX_BYTES));
  } catch (error) {
    if (options?.ifMissing && errnoOf(error) === "ENOENT") return null;
    throw ioError(error, "read", path);
  }
  if (bytes.length > TSM_BLOB_MAX_BYTES) {
    throw new EvidenceError(
      "TSM_BLOB_TOO_LARGE",
      `configfs-tsm: ${path}: expected at most ${TSM_BLOB_MAX_BYTES} bytes (the kernel caps each blob at 32 KiB, TSM_OUTBLOB_MAX), found more`,
    );
  }
  return bytes;
}

/** SEV-SNP evidence through configfs-tsm: the report and the host's certificate table. */
export class ConfigfsTsmSnpProvider implements TeeEvidenceProvider {
  readonly kind = "snp";
  constructor(private readonly options: Omit<ConfigfsTsmOptions, "kind"> = {}) {}

  async getEvidence(reportData: Uint8Array): Promise<RawSnpEvidence> {
    const report = await requestTsmReport(reportData, { ...this.options, kind: "snp" });
    return {
      kind: "snp",
      report: report.outblob,
      certificates: report.auxblob === null ? EMPTY_SNP_CERTIFICATE_TABLE : parseSnpCertificateTable(report.auxblob),
      source: "configfs-tsm",
    };
  }
}

/** Intel TDX evidence through configfs-tsm: the quote (needs the host's quote generation service). */
export class ConfigfsTsmTdxProvider implements TeeEvidenceProvider {
  readonly kind = "tdx";
  constructor(private readonly options: Omit<ConfigfsTsmOptions, "kind" | "privlevel"> = {}) {}

  async getEvidence(reportData: Uint8Array): Promise<RawTdxEvidence> {
    const report = await requestTsmReport(reportData, { ...this.options, kind: "tdx" });
    return { kind: "tdx", quote: report.outblob, source: "configfs-tsm" };
  }
}
