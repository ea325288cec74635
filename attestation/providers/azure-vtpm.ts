/**
 * Evidence on an Azure confidential VM (SEV-SNP or TDX behind the Azure paravisor, "HCL"): the
 * guest has no /dev/sev-guest or configfs-tsm provider; the hardware report is made by the
 * paravisor and exposed through the vTPM. One request:
 *
 *   1. write REPORT_DATA (64 bytes) to NV index 0x01400002 (defined if absent, defined again if it
 *      has another size), so the paravisor puts it in the runtime data's `user-data` of a fresh HCL
 *      report (tpm2_nvreadpublic/tpm2_nvundefine/tpm2_nvdefine/tpm2_nvwrite)
 *   2. read the HCL report from NV index 0x01400001 (tpm2_nvread), again every 500 ms until its
 *      user-data is the REPORT_DATA written (the paravisor refreshes it a moment later; Microsoft's
 *      az-snp-vtpm waits 3 s), for up to 5 s
 *   3. quote the 24 SHA-256 PCRs with the attestation key 0x81000003 (again, up to 4 times in all,
 *      when a PCR changed between the quote and the tool's PCR read) and qualifying data =
 *      SHA-256(REPORT_DATA) (tpm2_quote -f plain -F values): a TPM takes at most 2 + its largest
 *      digest (50 bytes on a SHA-384 TPM) as qualifying data and refuses 64 ("structure is the
 *      wrong size"); 32 bytes fit every TPM 2.0 (binding.ts azureQuoteQualifyingData)
 *   4. SNP: fetch the VCEK from the Azure instance metadata service (THIM);
 *      TDX: exchange the TDREPORT for a TD quote at the IMDS quote endpoint
 *   5. emit Cloister's Azure evidence JSON (attestation/azure/evidence.ts: v2 SNP / v1 TDX)
 *
 * Tools and IMDS are injected (tests use fakes returning the captured fixture bytes); nothing is
 * verified here. The verifier checks that the quote's extraData is SHA-256(REPORT_DATA).
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { base64url } from "jose";
import { serializeAzureEvidence } from "../azure/evidence.ts";
import { parseHclReport } from "../azure/hcl.ts";
import { azureQuoteQualifyingData } from "../binding.ts";
import { toHex } from "../bytes.ts";
import { ConfigurationError, EvidenceError } from "../errors.ts";
import { parseCertificateBytes } from "../x509.ts";
import { FetchProblem, fetchBounded } from "./bounded-fetch.ts";
import { type CommandResult, type CommandRunner, createCommandRunner } from "./command-runner.ts";
import { type RawAzureEvidence, REPORT_DATA_SIZE, type TeeEvidenceProvider } from "./types.ts";

export const AZURE_HCL_REPORT_NV_INDEX = "0x01400001";
export const AZURE_USER_DATA_NV_INDEX = "0x01400002";
export const AZURE_AK_HANDLE = "0x81000003";
export const AZURE_PCR_SELECTION = `sha256:${Array.from({ length: 24 }, (_, i) => i).join(",")}`;
export const AZURE_THIM_VCEK_URL = "http://169.254.169.254/metadata/THIM/amd/certification";
export const AZURE_TDX_QUOTE_URL = "http://169.254.169.254/acc/tdquote";

/** The Azure instance metadata service calls the provider needs (injected; real fetch by default). */
export interface AzureImds {
  /** SNP: the VCEK certificate (PEM or DER bytes) for this VM's chip and TCB. */
  getVcek(): Promise<Uint8Array>;
  /** TDX: a TD quote for a TDREPORT. */
  getTdQuote(tdReport: Uint8Array): Promise<Uint8Array>;
}

/** How long one IMDS call may take, and the most of its answer read (a VCEK chain or a TD quote is a few KB). */
export const IMDS_TIMEOUT_MS = 10_000;
export const MAX_IMDS_RESPONSE_BYTES = 64 * 1024;

export function fetchImds(fetchFn: typeof fetch = fetch, timeoutMs = IMDS_TIMEOUT_MS): AzureImds {
  return {
    async getVcek() {
      const body = (await imdsJson(
        fetchFn,
        "IMDS THIM",
        AZURE_THIM_VCEK_URL,
        { headers: { Metadata: "true" } },
        timeoutMs,
      )) as {
        vcekCert?: unknown;
      } | null;
      if (typeof body?.vcekCert !== "string")
        throw new EvidenceError("AZURE_IMDS_FAILED", "IMDS THIM: expected vcekCert (PEM)");
      return new TextEncoder().encode(body.vcekCert);
    },
    async getTdQuote(tdReport) {
      const body = (await imdsJson(
        fetchFn,
        "IMDS tdquote",
        AZURE_TDX_QUOTE_URL,
        {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ report: base64url.encode(tdReport) }),
        },
        timeoutMs,
      )) as { quote?: unknown } | null;
      if (typeof body?.quote !== "string")
        throw new EvidenceError("AZURE_IMDS_FAILED", "IMDS tdquote: expected quote (base64url)");
      return base64url.decode(body.quote.replace(/=+$/, ""));
    },
  };
}

/** One IMDS call's JSON answer, within `timeoutMs` and MAX_IMDS_RESPONSE_BYTES; else AZURE_IMDS_FAILED naming `what`. */
async function imdsJson(
  fetchFn: typeof fetch,
  what: string,
  url: string,
  init: RequestInit,
  timeoutMs: number,
): Promise<unknown> {
  let body: Uint8Array;
  try {
    body = await fetchBounded(fetchFn, url, init, timeoutMs, MAX_IMDS_RESPONSE_BYTES);
  } catch (error) {
    if (!(error instanceof FetchProblem)) throw error;
    throw new EvidenceError("AZURE_IMDS_FAILED", `${what}: ${error.message}`, { cause: error.cause });
  }
  try {
    return JSON.parse(new TextDecoder().decode(body));
  } catch {
    throw new EvidenceError("AZURE_IMDS_FAILED", `${what}: expected JSON, found other text`);
  }
}

export interface AzureVtpmOptions {
  readonly kind: "azure-snp" | "azure-tdx";
  readonly run?: CommandRunner;
  readonly imds?: AzureImds;
  /** Write REPORT_DATA into the HCL user-data first (default true). */
  readonly refreshUserData?: boolean;
  /** Directory for the tools' temporary files (default the OS temp directory). */
  readonly tempDir?: string;
  /** How long to read the HCL report again until it carries the user-data written (default 5 s). */
  readonly refreshTimeoutMs?: number;
  /** The pause between two reads of a stale HCL report (default 500 ms). */
  readonly refreshIntervalMs?: number;
  /** How many times tpm2_quote runs when a PCR changes under it (default 4). */
  readonly quoteAttempts?: number;
  /** The pause before the first repeated quote, doubled before each next one (default 100 ms). */
  readonly quoteRetryDelayMs?: number;
}

export const AZURE_REFRESH_TIMEOUT_MS = 5_000;
export const AZURE_REFRESH_INTERVAL_MS = 500;
export const AZURE_QUOTE_ATTEMPTS = 4;
export const AZURE_QUOTE_RETRY_DELAY_MS = 100;

/**
 * What tpm2_quote prints (and exits non-zero) when the PCR values it reads after the quote do not
 * give the quote's PCR digest: a PCR was extended in between (IMA, a service measuring itself).
 * Keylime's agent runs tpm2_quote again on exactly this message.
 */
export const TPM2_QUOTE_PCR_RACE = "Error validating calculated PCR composite with quote";

/** At most this many characters of a tool's own text are quoted in an error message. */
const TOOL_TEXT_CHARS = 300;

/**
 * What a tool's stderr says, for an error message: its ERROR lines (tpm2-tools print the TSS's
 * WARNING lines first, e.g. "WARNING:esys:… Received TPM Error", which say the least, and the
 * decoded response code last), else its first line; at most 300 characters.
 */
const toolError = (stderr: string): string => {
  const lines = stderr.trim().split("\n");
  const errors = lines.filter((line) => line.startsWith("ERROR"));
  return (errors.length > 0 ? errors.join(" | ") : (lines[0] ?? "")).slice(0, TOOL_TEXT_CHARS);
};

const commandFailed = (command: string, exitCode: number, detail: string): EvidenceError =>
  new EvidenceError("TPM_COMMAND_FAILED", `${command}: expected exit status 0, found ${exitCode}: ${detail}`);

/** What an Azure VM needs for this provider, said when the TPM or the HCL report is not there. */
const AZURE_CVM_HINT =
  "an Azure confidential VM (az vm create --security-type ConfidentialVM --enable-vtpm true, a DCasv5/ECasv5 size for azure-snp, DCesv6/ECesv6 for azure-tdx)";

/**
 * tpm2-tools' TSS could open no TPM (its TCTI loader tried /dev/tpmrm0 and /dev/tpm0 and found
 * neither usable): the TPM_COMMAND_FAILED naming the devices and what the TSS found at each (at
 * most TOOL_TEXT_CHARS of it), else null. Its raw ERROR lines name library files and a "(null)"
 * TCTI, which point nowhere.
 */
function tpmUnavailable(command: string, stderr: string): EvidenceError | null {
  const devices = [...stderr.matchAll(/Failed to open specified TCTI device file (\/dev\/\S+): ([^\n]*?)\s*$/gm)];
  if (devices.length === 0 && !stderr.includes("Could not load tcti")) return null;
  const found =
    devices.length === 0
      ? "no TPM the tools could load"
      : devices
          .map(([, device, problem]) => `${device}: ${problem}`)
          .join("; ")
          .slice(0, TOOL_TEXT_CHARS);
  return new EvidenceError(
    "TPM_COMMAND_FAILED",
    `${command}: expected a TPM device the tools can open (/dev/tpmrm0 or /dev/tpm0), found ${found}; --tee azure-snp and azure-tdx need ${AZURE_CVM_HINT}, and the enclave run as root or in the tss group`,
  );
}

/** A tool's failure: no TPM it could open (tpmUnavailable), else its exit status and ERROR lines. */
const toolFailed = (command: string, result: CommandResult): EvidenceError =>
  tpmUnavailable(command, result.stderr) ?? commandFailed(command, result.exitCode, toolError(result.stderr));

async function tool(run: CommandRunner, command: string, args: readonly string[]): Promise<void> {
  const result = await run(command, args);
  if (result.exitCode !== 0) throw toolFailed(command, result);
}

async function readOutput(path: string, what: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (error) {
    throw new EvidenceError("TPM_COMMAND_FAILED", `${what}: expected the tool to write ${path}, found none`, {
      cause: error,
    });
  }
}

export class AzureVtpmProvider implements TeeEvidenceProvider {
  readonly kind: "azure-snp" | "azure-tdx";
  private readonly run: CommandRunner;
  private readonly imds: AzureImds;

  constructor(private readonly options: AzureVtpmOptions) {
    this.kind = options.kind;
    this.run = options.run ?? createCommandRunner();
    this.imds = options.imds ?? fetchImds();
  }

  /**
   * NV index 0x01400002 as a 64-byte index: defined when absent; undefined and defined again when
   * it has another size (left by another tool), which tpm2_nvwrite would refuse to fill.
   */
  private async defineUserDataIndex(): Promise<void> {
    const existing = await this.run("tpm2_nvreadpublic", [AZURE_USER_DATA_NV_INDEX]);
    const unavailable = existing.exitCode === 0 ? null : tpmUnavailable("tpm2_nvreadpublic", existing.stderr);
    if (unavailable !== null) throw unavailable;
    if (existing.exitCode === 0) {
      const size = /^\s+size:\s*(\d+)\s*$/m.exec(new TextDecoder().decode(existing.stdout))?.[1];
      // Unparsable output: left to tpm2_nvwrite, which names its own error.
      if (size === undefined || Number(size) === REPORT_DATA_SIZE) return;
      const undefine = await this.run("tpm2_nvundefine", ["-C", "o", AZURE_USER_DATA_NV_INDEX]);
      if (undefine.exitCode !== 0) {
        throw new EvidenceError(
          "AZURE_USER_DATA_INDEX_SIZE",
          `NV index ${AZURE_USER_DATA_NV_INDEX}: expected ${REPORT_DATA_SIZE} bytes, found ${size}, and tpm2_nvundefine exited ${undefine.exitCode}: ${toolError(undefine.stderr)}`,
        );
      }
    }
    await tool(this.run, "tpm2_nvdefine", [
      "-C",
      "o",
      "-s",
      String(REPORT_DATA_SIZE),
      "-a",
      "ownerread|ownerwrite|authread|authwrite",
      AZURE_USER_DATA_NV_INDEX,
    ]);
  }

  /**
   * The HCL report of this TEE; with `userData` (lower-case hex), read again every
   * refreshIntervalMs until it carries that user-data, for up to refreshTimeoutMs.
   */
  private async readHclReport(
    path: string,
    userData: string | null,
  ): Promise<{ hclReport: Uint8Array; hcl: ReturnType<typeof parseHclReport> }> {
    const timeoutMs = this.options.refreshTimeoutMs ?? AZURE_REFRESH_TIMEOUT_MS;
    const intervalMs = this.options.refreshIntervalMs ?? AZURE_REFRESH_INTERVAL_MS;
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const read = await this.run("tpm2_nvread", ["-C", "o", "-o", path, AZURE_HCL_REPORT_NV_INDEX]);
      if (read.exitCode !== 0) {
        const unavailable = tpmUnavailable("tpm2_nvread", read.stderr);
        if (unavailable !== null) throw unavailable;
        // TPM_RC_HANDLE (0x18B): the TPM has no such index. A Trusted Launch or standard VM has a
        // vTPM but no paravisor, so no HCL report.
        const noSuchIndex = /^.*\b(?:0x18b\b|handle is not correct).*$/im.exec(read.stderr);
        if (noSuchIndex !== null) {
          // The tool's decoded response code, the line that says it; toolError's 300 characters end before it.
          const decoded = /^ERROR: .*handle is not correct.*$/m.exec(read.stderr) ?? noSuchIndex;
          throw new EvidenceError(
            "TPM_COMMAND_FAILED",
            `tpm2_nvread: expected the paravisor's HCL report at NV index ${AZURE_HCL_REPORT_NV_INDEX}, found no such index (${decoded[0].trim().slice(0, TOOL_TEXT_CHARS)}): this VM's vTPM is not an Azure confidential VM's; --tee azure-snp and azure-tdx need ${AZURE_CVM_HINT}`,
          );
        }
        throw commandFailed("tpm2_nvread", read.exitCode, toolError(read.stderr));
      }
      const hclReport = await readOutput(path, "tpm2_nvread");
      const hcl = parseHclReport(hclReport);
      if (`azure-${hcl.reportType}` !== this.kind) {
        throw new EvidenceError(
          "AZURE_WRONG_TEE",
          `HCL report: expected ${this.kind}, found a ${hcl.reportType} report`,
        );
      }
      if (userData === null || hcl.runtimeData.userData?.toLowerCase() === userData) return { hclReport, hcl };
      if (performance.now() + intervalMs > deadline) {
        throw new EvidenceError(
          "AZURE_USER_DATA_NOT_REFRESHED",
          `HCL report: expected the user-data just written to NV index ${AZURE_USER_DATA_NV_INDEX}, found other data (stale report) after ${timeoutMs} ms of reads`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  }

  /**
   * tpm2_quote, run again (after 100, 200, 400 ms by default) when a PCR changed between the quote
   * and the tool's PCR read; any other failure is not retried.
   */
  private async quote(args: readonly string[]): Promise<void> {
    const attempts = this.options.quoteAttempts ?? AZURE_QUOTE_ATTEMPTS;
    // A code error (no command-line option sets it): NaN would have retried a racing quote forever.
    if (!Number.isSafeInteger(attempts) || attempts < 1) {
      throw new RangeError(`quoteAttempts: expected an integer of at least 1, found ${attempts}`);
    }
    const delayMs = this.options.quoteRetryDelayMs ?? AZURE_QUOTE_RETRY_DELAY_MS;
    for (let attempt = 1; ; attempt++) {
      const result = await this.run("tpm2_quote", args);
      if (result.exitCode === 0) return;
      if (!result.stderr.includes(TPM2_QUOTE_PCR_RACE)) {
        throw toolFailed("tpm2_quote", result);
      }
      if (attempt >= attempts) {
        throw commandFailed(
          "tpm2_quote",
          result.exitCode,
          `${TPM2_QUOTE_PCR_RACE} (a PCR changed between the quote and the tool's PCR read) on each of ${attempts} attempts`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, delayMs * 2 ** (attempt - 1)));
    }
  }

  async getEvidence(reportData: Uint8Array): Promise<RawAzureEvidence> {
    if (reportData.length !== REPORT_DATA_SIZE) {
      throw new ConfigurationError(
        "REPORT_DATA_SIZE",
        `REPORT_DATA: expected ${REPORT_DATA_SIZE} bytes, found ${reportData.length}`,
      );
    }
    const dir = await mkdtemp(join(this.options.tempDir ?? tmpdir(), "cloister-vtpm-"));
    try {
      if (this.options.refreshUserData ?? true) {
        const userData = join(dir, "user-data.bin");
        await writeFile(userData, reportData);
        await this.defineUserDataIndex();
        await tool(this.run, "tpm2_nvwrite", ["-C", "o", "-i", userData, AZURE_USER_DATA_NV_INDEX]);
      }
      const { hclReport, hcl } = await this.readHclReport(
        join(dir, "hcl-report.bin"),
        (this.options.refreshUserData ?? true) ? toHex(reportData) : null,
      );
      const [msg, sig, pcrs] = ["quote.msg", "quote.sig", "quote.pcrs"].map((n) => join(dir, n)) as [
        string,
        string,
        string,
      ];
      await this.quote([
        "-c",
        AZURE_AK_HANDLE,
        "-l",
        AZURE_PCR_SELECTION,
        "-q",
        toHex(azureQuoteQualifyingData(reportData)),
        "-g",
        "sha256",
        "-m",
        msg,
        "-s",
        sig,
        "-f",
        "plain",
        "-o",
        pcrs,
        "-F",
        "values",
      ]);
      const pcrValues = await readOutput(pcrs, "tpm2_quote");
      if (pcrValues.length !== 24 * 32) {
        throw new EvidenceError(
          "TPM_COMMAND_FAILED",
          `tpm2_quote: expected 24 SHA-256 PCR values (768 bytes), found ${pcrValues.length} bytes`,
        );
      }
      const tpmQuote = {
        message: await readOutput(msg, "tpm2_quote"),
        signature: await readOutput(sig, "tpm2_quote"),
        pcrs: Array.from({ length: 24 }, (_, i) => pcrValues.slice(i * 32, i * 32 + 32)),
      };
      const json =
        this.kind === "azure-snp"
          ? serializeAzureEvidence({
              hclReport,
              tpmQuote,
              vcekDer: parseCertificateBytes(await this.imds.getVcek()).der,
            })
          : serializeAzureEvidence({
              hclReport,
              tpmQuote,
              tdQuote: await this.imds.getTdQuote(hcl.tdReport as Uint8Array),
            });
      return { kind: this.kind, json, source: "azure-vtpm" };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}
