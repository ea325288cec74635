/**
 * Which TEE is this process running in? Used by `--tee auto`. Looks, in order, at:
 *   1. configfs-tsm: a probe entry's `provider` (sev_guest → snp, tdx_guest → tdx), removed again;
 *      an entry refused (not root, a read-only mount) is reported when nothing below is found
 *   2. /dev/sev-guest → snp, /dev/tdx_guest → tdx (older kernels: detected, but the configfs-tsm
 *      provider will then report TSM_UNAVAILABLE; see docs/platforms.md)
 *   3. Azure confidential VM: DMI sys_vendor "Microsoft Corporation", a TPM device, and the HCL
 *      report NV index 0x01400001 present (tpm2_nvreadpublic); AMD vs Intel from /proc/cpuinfo
 * Every path and the command runner are injectable. Detection is a convenience, not a security
 * decision: the verifier decides what the evidence is.
 */
import { access } from "node:fs/promises";
import { join } from "node:path";
import { toHex } from "../bytes.ts";
import { randomBytes } from "../crypto.ts";
import { EvidenceError } from "../errors.ts";
import { decodeUtf8 } from "../utf8.ts";
import { AZURE_HCL_REPORT_NV_INDEX } from "./azure-vtpm.ts";
import type { CommandRunner } from "./command-runner.ts";
import { DEFAULT_TSM_REPORT_ROOT, errnoOf, ioError, nodeTsmFileSystem, type TsmFileSystem } from "./configfs-tsm.ts";
import type { TeeKind } from "./types.ts";

export interface DetectTeeOptions {
  /** Prefix for every absolute path below (a test's temporary directory); default "/". */
  readonly root?: string;
  readonly tsmReportDir?: string;
  readonly fs?: TsmFileSystem;
  /** Runs tpm2_nvreadpublic for the Azure check; without it Azure is not detected. */
  readonly run?: CommandRunner;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * The most bytes read of a kernel attribute (configfs-tsm's provider, DMI's sys_vendor): a sysfs or
 * configfs text attribute is one page at most, 4 KiB on x86 (where SNP and TDX run). A larger file
 * is not what the kernel shows, so it tells nothing: detected as nothing, never held whole.
 */
const KERNEL_ATTRIBUTE_BYTES = 4096;

/**
 * The start of /proc/cpuinfo read for its vendor: `vendor_id` is the second line of the first
 * processor's entry; the whole file, some 1.5 KiB a processor, can be far larger.
 */
const CPUINFO_START_BYTES = 4096;

/** A kernel attribute's text, trimmed; null past KERNEL_ATTRIBUTE_BYTES or when not UTF-8. */
function attributeText(bytes: Uint8Array): string | null {
  if (bytes.length > KERNEL_ATTRIBUTE_BYTES) return null;
  const text = decodeUtf8(bytes);
  return typeof text === "string" ? text.trim() : null;
}

/** `path`'s first `bytes` bytes (or one more), or null when it cannot be read. */
async function readStart(path: string, bytes: number): Promise<Uint8Array | null> {
  try {
    return await nodeTsmFileSystem.readFile(path, bytes);
  } catch {
    return null;
  }
}

async function readAttribute(path: string): Promise<string | null> {
  const bytes = await readStart(path, KERNEL_ATTRIBUTE_BYTES);
  return bytes === null ? null : attributeText(bytes);
}

/**
 * What configfs-tsm's probe entry says: the TEE its provider names; null when there is no answer
 * (no report directory, no provider driver: ENXIO, another provider); or, when creating the entry
 * was refused for a reason that says nothing about a provider (EACCES/EPERM: not root; EROFS: a
 * read-only mount over configfs), the error `--tee snp` or `tdx` gives for it.
 */
async function probeTsm(fs: TsmFileSystem, dir: string): Promise<TeeKind | EvidenceError | null> {
  if (!(await fs.isDirectory(dir))) return null;
  const entry = join(dir, `cloister-detect-${toHex(randomBytes(6))}`);
  try {
    await fs.mkdir(entry);
  } catch (error) {
    const errno = errnoOf(error);
    return errno === "EACCES" || errno === "EPERM" || errno === "EROFS" ? ioError(error, "mkdir", entry) : null;
  }
  try {
    const provider = attributeText(await fs.readFile(join(entry, "provider"), KERNEL_ATTRIBUTE_BYTES));
    return provider === "sev_guest" ? "snp" : provider === "tdx_guest" ? "tdx" : null;
  } catch {
    return null;
  } finally {
    await fs.rmdir(entry).catch(() => undefined);
  }
}

/**
 * The TEE found, or null. When configfs-tsm refused the probe entry and nothing else is found, that
 * refusal is thrown (TSM_PERMISSION_DENIED, or TSM_IO_ERROR naming the read-only mount): whether
 * configfs-tsm has a provider is then unknown, and the refusal, not "no TEE", is what to fix. It is
 * not thrown when a guest device or an Azure CVM is found: those need no configfs-tsm entry to detect.
 */
export async function detectTee(options: DetectTeeOptions = {}): Promise<TeeKind | null> {
  const root = options.root ?? "/";
  const at = (path: string) => join(root, path);
  const fromTsm = await probeTsm(options.fs ?? nodeTsmFileSystem, options.tsmReportDir ?? at(DEFAULT_TSM_REPORT_ROOT));
  if (typeof fromTsm === "string") return fromTsm;
  if (await exists(at("/dev/sev-guest"))) return "snp";
  if (await exists(at("/dev/tdx_guest"))) return "tdx";
  const azure = await detectAzure(at, options.run);
  if (azure !== null) return azure;
  if (fromTsm !== null) {
    throw new EvidenceError(fromTsm.code, `--tee auto: ${fromTsm.message}`, { cause: fromTsm.cause });
  }
  return null;
}

async function detectAzure(at: (path: string) => string, run: CommandRunner | undefined): Promise<TeeKind | null> {
  const vendor = await readAttribute(at("/sys/class/dmi/id/sys_vendor"));
  if (vendor !== "Microsoft Corporation" || run === undefined) return null;
  if (!(await exists(at("/dev/tpmrm0"))) && !(await exists(at("/dev/tpm0")))) return null;
  const nv = await run("tpm2_nvreadpublic", [AZURE_HCL_REPORT_NV_INDEX]).catch(() => null);
  if (nv === null || nv.exitCode !== 0) return null;
  // Bytes, not text: the vendor is ASCII, and a start may end inside a character.
  const cpuinfo = Buffer.from((await readStart(at("/proc/cpuinfo"), CPUINFO_START_BYTES)) ?? []);
  if (cpuinfo.includes("AuthenticAMD")) return "azure-snp";
  if (cpuinfo.includes("GenuineIntel")) return "azure-tdx";
  return null;
}
