/**
 * Where the enclave's evidence comes from. Real TEEs go through the providers in
 * attestation/providers/ (configfs-tsm for SNP and TDX); the INSECURE simulator signs real-format
 * SNP reports and TDX quotes with its public-seed hierarchy, so clients verify them with the same
 * code as hardware evidence and accept them only when their policy trusts the simulator.
 */
import { base64url } from "jose";
import { toHex, utf8 } from "../attestation/bytes.ts";
import {
  type AttestationCollateral,
  parseAttestationCollateral,
  type TdxCollateralWire,
  tdxCollateralWire,
  tdxVerificationCollateral,
} from "../attestation/collateral.ts";
import { AttestationError, EvidenceError } from "../attestation/errors.ts";
import type { DocumentEvidence, TrustAnchors } from "../attestation/evidence.ts";
import {
  KDS_URL_ENV,
  type KdsVcekSource,
  kdsBaseUrl,
  kdsVcekSource,
  refuseUnsignedSnpReport,
} from "../attestation/providers/amd-kds.ts";
import {
  ConfigfsTsmSnpProvider,
  ConfigfsTsmTdxProvider,
  DEFAULT_TSM_REPORT_ROOT,
  type TsmFileSystem,
} from "../attestation/providers/configfs-tsm.ts";
import { snpCertificate } from "../attestation/providers/snp-cert-table.ts";
import type { RawSnpEvidence } from "../attestation/providers/types.ts";
import { parseSnpReport, type SnpProduct } from "../attestation/snp/parse.ts";
import { AMD_KDS_URL, reportSignedBy } from "../attestation/snp/verify.ts";
import { parseCertificate } from "../attestation/x509.ts";
import { measureEnclave } from "./measure.ts";

export const TEE_MODES = ["snp", "tdx", "azure-snp", "azure-tdx", "sim-snp", "sim-tdx"] as const;
export type TeeMode = (typeof TEE_MODES)[number];

/** The modes whose evidence source is the INSECURE simulator (its `simulated` is true). */
export function isSimulatedTeeMode(mode: TeeMode): mode is "sim-snp" | "sim-tdx" {
  return mode === "sim-snp" || mode === "sim-tdx";
}

/**
 * Resolves `--tee auto`: configfs-tsm's provider, then the legacy guest devices, then Azure's
 * paravisor (vTPM with the HCL report NV index). Never falls back to the simulator: a machine
 * with no TEE is an error, so a misconfigured production VM cannot start unattested-but-simulated.
 */
export async function detectTeeMode(
  log: (line: string) => void,
  detect: () => Promise<TeeMode | null> = detectOnThisMachine,
): Promise<TeeMode> {
  const found = await detect();
  if (found === null) {
    throw new AttestationError(
      "configuration",
      "TEE_NOT_DETECTED",
      `--tee auto: expected an SEV-SNP or TDX guest, found none (no configfs-tsm provider under ${DEFAULT_TSM_REPORT_ROOT}, no /dev/sev-guest or /dev/tdx_guest, no Azure confidential VM: DMI vendor Microsoft Corporation, /dev/tpmrm0 or /dev/tpm0, and the HCL report's NV index 0x01400001 read with tpm2-tools); pass this VM's --tee (snp, tdx, azure-snp, azure-tdx) to have its evidence source name what is missing, or --tee sim-snp or sim-tdx to run the insecure simulator`,
    );
  }
  log(`--tee auto: detected ${found}`);
  return found;
}

/** detectTee on this machine's paths, tpm2-tools run for the Azure check. */
async function detectOnThisMachine(): Promise<TeeMode | null> {
  const { detectTee } = await import("../attestation/providers/detect.ts");
  const { createCommandRunner } = await import("../attestation/providers/command-runner.ts");
  return detectTee({ run: createCommandRunner({ timeoutMs: 10_000 }) });
}

export interface EvidenceSource {
  readonly mode: TeeMode;
  readonly simulated: boolean;
  /** The launch measurement the evidence will carry, lower-case hex (simulator: known up front). */
  readonly measurement: string | null;
  collect(reportData: Uint8Array): Promise<DocumentEvidence>;
  /**
   * The vendor collateral served next to the document (attestation/collateral.ts), current at
   * `at`; null when there is none (then policies requiring a TCB status refuse this enclave).
   */
  collateral(at: Date): Promise<AttestationCollateral | null>;
}

export interface EvidenceSourceOptions {
  /**
   * TDX only: a directory of Intel PCS collateral (attestation/tdx/collateral-dir.ts), read again
   * when it is older than COLLATERAL_RELOAD_MS, so an operator's job that renews it needs no restart.
   */
  readonly tdxCollateralDir?: string | undefined;
  /**
   * SNP only: the AMD KDS base URL (a cache or proxy) for a VCEK the host's certificate table
   * lacks (`--kds-url`); else CLOISTER_KDS_URL, else AMD's service (attestation/providers/amd-kds.ts).
   */
  readonly kdsUrl?: string | undefined;
  /** SNP only: the processor to ask KDS about when the report cannot tell it (version 2). */
  readonly snpProduct?: SnpProduct | undefined;
  /** SNP only, for tests: the configfs-tsm report directory and its file system (an emulator). */
  readonly configfsTsm?: { readonly root?: string; readonly fs?: TsmFileSystem } | undefined;
  /** The environment CLOISTER_KDS_URL is read from (default process.env). */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/**
 * How old collateral is when the enclave serves it, where it can choose: of renewals kept side by
 * side in a collateral directory, one issued at least this long ago while it is current; the
 * simulator dates its own this far back. Clients check issue dates with no clock skew allowed, and a
 * client's clock may be behind the enclave's.
 */
const COLLATERAL_SETTLE_MS = 60 * 60_000;

/** How long collateral read from a directory (or made by the simulator) is served before it is read (made) again. */
export const COLLATERAL_RELOAD_MS = 5 * 60_000;

const noCollateral = async (): Promise<null> => null;

/**
 * Refuses an option `mode` does not take (TDX_COLLATERAL_UNUSED, SNP_KDS_OPTION_UNUSED) and a
 * malformed KDS URL (SNP_KDS_URL_INVALID): what createEvidenceSource checks first, for a caller (the
 * boot) to check before anything slow.
 */
export function checkEvidenceSourceOptions(mode: TeeMode, options: EvidenceSourceOptions): void {
  if (options.tdxCollateralDir !== undefined && mode !== "tdx") {
    throw new AttestationError(
      "configuration",
      "TDX_COLLATERAL_UNUSED",
      `--tdx-collateral: expected --tee tdx, found --tee ${mode} (the simulator makes its own; Azure's evidence carries none)`,
    );
  }
  if ((options.kdsUrl !== undefined || options.snpProduct !== undefined) && mode !== "snp") {
    throw new AttestationError(
      "configuration",
      "SNP_KDS_OPTION_UNUSED",
      `${options.kdsUrl !== undefined ? "--kds-url" : "--snp-product"}: expected --tee snp, found --tee ${mode} (only a configfs-tsm SNP guest fetches its VCEK from AMD KDS)`,
    );
  }
  if (mode === "snp") {
    const kdsUrl = kdsUrlOption(options);
    if (kdsUrl !== undefined) kdsBaseUrl(kdsUrl);
  }
}

/** Where --tee snp fetches its VCEK: --kds-url, else CLOISTER_KDS_URL, else AMD KDS (undefined). */
function kdsUrlOption(options: EvidenceSourceOptions): { url: string; what: string } | undefined {
  const env = options.env ?? process.env;
  if (options.kdsUrl !== undefined) return { url: options.kdsUrl, what: "--kds-url" };
  const fromEnv = env[KDS_URL_ENV];
  return fromEnv ? { url: fromEnv, what: KDS_URL_ENV } : undefined;
}

/** Creates the evidence source for `mode`. */
export async function createEvidenceSource(
  mode: TeeMode,
  options: EvidenceSourceOptions = {},
): Promise<EvidenceSource> {
  checkEvidenceSourceOptions(mode, options);
  switch (mode) {
    case "sim-snp":
    case "sim-tdx":
      return createInsecureSimulatorSource(mode);
    case "snp": {
      const provider = new ConfigfsTsmSnpProvider(options.configfsTsm ?? {});
      const kdsUrl = kdsUrlOption(options);
      const kds = kdsVcekSource({
        ...(kdsUrl === undefined ? {} : { baseUrl: kdsUrl }),
        ...(options.snpProduct === undefined ? {} : { product: options.snpProduct }),
      });
      return {
        mode,
        simulated: false,
        measurement: null,
        async collect(reportData) {
          const raw = await provider.getEvidence(reportData);
          const key = await snpEndorsementKey(raw, kds);
          return { type: "sev-snp", report: base64url.encode(raw.report), endorsementKey: base64url.encode(key) };
        },
        collateral: noCollateral,
      };
    }
    case "azure-snp":
    case "azure-tdx": {
      const { AzureVtpmProvider } = await import("../attestation/providers/azure-vtpm.ts");
      const provider = new AzureVtpmProvider({ kind: mode });
      return {
        mode,
        simulated: false,
        measurement: null,
        async collect(reportData) {
          // On Azure CVMs the paravisor owns REPORT_DATA; the binding goes into the vTPM quote's
          // qualifying data as SHA-256(REPORT_DATA), and the HCL report binds the vTPM key
          // (docs/platforms.md).
          const raw = await provider.getEvidence(reportData);
          return { type: mode, evidence: raw.json };
        },
        collateral: noCollateral,
      };
    }
    case "tdx": {
      const provider = new ConfigfsTsmTdxProvider();
      let quote: Uint8Array | null = null;
      const dir = options.tdxCollateralDir;
      return {
        mode,
        simulated: false,
        measurement: null,
        async collect(reportData) {
          const raw = await provider.getEvidence(reportData);
          quote = raw.quote;
          return { type: "tdx", quote: base64url.encode(raw.quote) };
        },
        collateral:
          dir === undefined
            ? noCollateral
            : reloading(async (at) => {
                if (quote === null) return null;
                const collateral = { tdx: await tdxCollateralFromDirectory(dir, quote, at) };
                // Served only when it verifies for this TD's own quote now, as clients will check it:
                // expired, foreign or broken collateral stops the boot, or keeps the last good one.
                // A verdict is not kept from clients, though: collateral that says this platform's
                // PCK certificate is revoked is served (clients refuse the enclave) rather than the
                // older collateral kept as if the reload had failed. (Of renewals side by side the
                // directory read picks one issued at least COLLATERAL_SETTLE_MS ago, so a newer CRL
                // reaches clients within that time and a reload.)
                await checkOwnCollateral(quote, collateral, at, logToStderr);
                return collateral;
              }),
      };
    }
  }
}

/**
 * The key that signed an SNP report: the entry of the host's certificate table (auxblob) that the
 * report's SIGNING_KEY names (VCEK or VLEK; a table may hold both), checked to verify the report's
 * signature before it is served, else the VCEK from AMD KDS (GCP's hosts supply no table). A
 * failure says both, and what to do on a cloud and on a host of one's own.
 */
async function snpEndorsementKey(raw: RawSnpEvidence, kds: KdsVcekSource): Promise<Uint8Array> {
  const report = parseSnpReport(raw.report);
  // No certificate verifies an unsigned report (SIGNING_KEY none, or the host's MaskChipKey set):
  // said as such, not as a stale table or a KDS failure.
  refuseUnsignedSnpReport(report);
  const kind = report.signingKey === "VLEK" ? "VLEK" : "VCEK";
  const fromTable = snpCertificate(raw.certificates, kind);
  if (fromTable !== undefined) {
    // One that does not sign this report (a stale table after a firmware update, another chip's)
    // would be served to every client, which would refuse it: the boot stops here instead.
    let signs = false;
    try {
      signs = await reportSignedBy(report, parseCertificate(fromTable));
    } catch {
      // not a certificate: reported below
    }
    if (!signs) {
      throw new EvidenceError(
        "SNP_NO_ENDORSEMENT_KEY",
        `SEV-SNP: the report's SIGNING_KEY is the ${kind}; expected the ${kind} in the host's certificate table (configfs-tsm's auxblob) to verify the report's signature, found a ${fromTable.length}-byte entry that does not (a stale table, e.g. from before a firmware update, or another chip's): load the current certificates into the host's table (snphost import)`,
      );
    }
    return fromTable;
  }
  try {
    return await kds.vcekFor(raw.report);
  } catch (error) {
    if (!(error instanceof AttestationError)) throw error;
    throw new AttestationError(
      error.stage,
      error.code,
      `SEV-SNP: configfs-tsm's auxblob holds no ${kind} (${raw.certificates.entries.length === 0 ? "the host supplied no certificate table" : `the host's certificate table lacks it`}), and ${error.message}. On GCP, let the enclave reach ${AMD_KDS_URL} or set --kds-url / ${KDS_URL_ENV} to a KDS cache; on a host of your own, load the certificates into the host's table (snphost import)`,
      { cause: error },
    );
  }
}

const logToStderr = (line: string): void => {
  process.stderr.write(`cloister enclave: ${line}\n`);
};

/**
 * `load`'s result, loaded again once it is COLLATERAL_RELOAD_MS old (one load at a time, in the
 * background: the last result is served meanwhile). The first load is waited for and its failure
 * is the caller's (the boot stops); a later failure is logged and the last good collateral served
 * until the next attempt, an interval on, so a renewal job caught half-way or a stray file does not
 * take the attestation route down.
 */
export function reloading(
  load: (at: Date) => Promise<AttestationCollateral | null>,
  log: (line: string) => void = logToStderr,
): (at: Date) => Promise<AttestationCollateral | null> {
  let good: { at: number; value: AttestationCollateral | null } | null = null;
  let pending: Promise<AttestationCollateral | null> | null = null;
  return async (at) => {
    const now = at.getTime();
    // (A clock set back a little is not a reason to load again.)
    if (good !== null && Math.abs(now - good.at) < COLLATERAL_RELOAD_MS) return good.value;
    pending ??= withTimeout(load(at), COLLATERAL_LOAD_TIMEOUT_MS)
      .then(
        (value) => {
          good = { at: now, value };
          return value;
        },
        (error: unknown) => {
          if (good === null) throw error;
          const code = (error as { code?: unknown } | null)?.code;
          const message = error instanceof Error ? error.message : String(error);
          log(
            `collateral reload failed (${typeof code === "string" ? `${code}: ` : ""}${message}); serving the collateral loaded at ${new Date(good.at).toISOString()}`,
          );
          good = { at: now, value: good.value };
          return good.value;
        },
      )
      .finally(() => {
        pending = null;
      });
    // The collateral held is served while the next one loads: a slow or stalled read (a network
    // file system) holds no attestation up. Only the first load is waited for.
    return good === null ? pending : good.value;
  };
}

/** Longest a collateral load may take before it counts as failed (a stalled network file system). */
const COLLATERAL_LOAD_TIMEOUT_MS = 60_000;

/** `promise`, or a rejection once `ms` have passed. */
function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no result in ${ms / 1000} s`)), ms);
    timer.unref?.();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Verifies `collateral` with this TD's quote under Intel's roots at `at`, as a client would: the
 * wire form within the limits clients apply, then every signature, date and the revocation check.
 * A revoked PCK certificate is logged, not thrown: that collateral is the truth to serve.
 */
export async function checkOwnCollateral(
  quote: Uint8Array,
  collateral: AttestationCollateral,
  at: Date,
  log: (line: string) => void,
  /** Intel's roots; tests pass the simulator's. */
  anchors?: TrustAnchors,
): Promise<void> {
  const { verifyDocumentEvidence } = await import("../attestation/evidence.ts");
  const { INTEL_ROOTS } = await import("../attestation/roots/intel.ts");
  const roots = anchors ?? { snp: [], tdx: INTEL_ROOTS };
  const invalid = (error: AttestationError) =>
    new AttestationError(
      "configuration",
      "TDX_COLLATERAL_INVALID",
      `--tdx-collateral: it does not verify for this TD's quote: ${error.code}: ${error.message}`,
      { cause: error },
    );
  try {
    const served = parseAttestationCollateral(JSON.parse(JSON.stringify(collateral)));
    try {
      await verifyDocumentEvidence({ type: "tdx", quote: base64url.encode(quote) }, roots, at, served);
    } catch (error) {
      if (!(error instanceof AttestationError) || error.code !== "CERT_REVOKED" || served?.tdx === undefined) {
        throw error;
      }
      // The verifier stops at the revocation; everything after it (signatures, TCB info, QE
      // identity, their chains and dates) is checked without the CRLs before this is served.
      const { verifyTdxQuote } = await import("../attestation/tdx/verify.ts");
      const { parseTdxQuote } = await import("../attestation/tdx/parse.ts");
      await verifyTdxQuote({
        quote: parseTdxQuote(quote),
        anchors: roots.tdx,
        at,
        collateral: tdxVerificationCollateral(served.tdx).collateral,
      });
      log(
        `--tdx-collateral: Intel's CRLs revoke a certificate of this platform's PCK chain or of the collateral's signer (${error.message}); clients will refuse this enclave`,
      );
    }
  } catch (error) {
    if (!(error instanceof AttestationError)) throw error;
    throw invalid(error);
  }
}

/**
 * The collateral for this TD's quote from an operator's directory: all of it (TCB info, QE
 * identity and CRLs), or an error saying what is missing, since partial collateral would let a
 * verifier report a TCB status without the QE or revocation checks behind it.
 */
export async function tdxCollateralFromDirectory(
  dir: string,
  quoteBytes: Uint8Array,
  at: Date,
): Promise<TdxCollateralWire> {
  const { parseTdxQuote } = await import("../attestation/tdx/parse.ts");
  const { loadTdxCollateralDirectory } = await import("../attestation/tdx/collateral-dir.ts");
  const fail = (message: string, cause?: unknown) =>
    new AttestationError("configuration", "TDX_COLLATERAL_UNREADABLE", message, { cause });
  const loaded = await loadTdxCollateralDirectory(
    dir,
    parseTdxQuote(quoteBytes),
    at,
    "--tdx-collateral",
    fail,
    COLLATERAL_SETTLE_MS,
  );
  const { tcbInfo, qeIdentity } = loaded.collateral;
  if (tcbInfo === undefined || qeIdentity === undefined || loaded.crls.length === 0) {
    throw fail(
      `--tdx-collateral ${dir}: lacks ${[tcbInfo === undefined ? "the TCB info for this platform" : null, qeIdentity === undefined ? "a QE identity" : null, loaded.crls.length === 0 ? "CRLs (*.der)" : null].filter((x) => x !== null).join(", ")}${loaded.notes.length === 0 ? "" : ` (${loaded.notes.join("; ")})`}`,
    );
  }
  const text = (bytes: Uint8Array | string) =>
    typeof bytes === "string" ? bytes : new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  return tdxCollateralWire({
    tcbInfo: { json: text(tcbInfo.json), issuerChain: text(tcbInfo.issuerChain) },
    qeIdentity: { json: text(qeIdentity.json), issuerChain: text(qeIdentity.issuerChain) },
    crls: loaded.crls,
  });
}

/**
 * The simulated launch measurement: a digest of the enclave's own code (enclave/measure.ts) and its
 * TEE mode, so changing enclave code changes it. `cloister up` computes it the same way to pin it
 * in the client policy it writes.
 */
export async function simulatedMeasurement(mode: "sim-snp" | "sim-tdx"): Promise<Uint8Array> {
  return (await measureEnclave({ config: utf8(JSON.stringify({ tee: mode })) })).measurement;
}

async function createInsecureSimulatorSource(mode: "sim-snp" | "sim-tdx"): Promise<EvidenceSource> {
  const sim = await import("../attestation/sim/index.ts");
  const measurement = await simulatedMeasurement(mode);
  const hex = toHex(measurement);
  if (mode === "sim-snp") {
    // The default hierarchy's VCEK alone: its certificate kept as bytes, no RSA key generated.
    const hierarchy = sim.insecureSimulatedDefaultSigner();
    return {
      mode,
      simulated: true,
      measurement: hex,
      async collect(reportData) {
        const report = sim.simulateSnpReport(hierarchy, { reportData, measurement });
        return {
          type: "sev-snp",
          report: base64url.encode(report),
          endorsementKey: base64url.encode(hierarchy.vcek.certificate),
        };
      },
      collateral: noCollateral,
    };
  }
  const hierarchy = sim.insecureSimulatedIntelHierarchy();
  const zero = new Uint8Array(48);
  return {
    mode,
    simulated: true,
    measurement: hex,
    async collect(reportData) {
      const quote = sim.simulateTdxQuote(hierarchy, { reportData, mrtd: measurement, rtmrs: [zero, zero, zero, zero] });
      return { type: "tdx", quote: base64url.encode(quote) };
    },
    // Collateral as Intel's PCS serves it, signed under the simulated root, issued an hour back
    // (clock differences) and made again every COLLATERAL_RELOAD_MS: clients check the TCB status,
    // QE identity and revocation of the simulated TD with the code they use for real ones.
    collateral: reloading(async (at) => ({
      tdx: tdxCollateralWire(
        sim.insecureSimulatedTdxCollateral(hierarchy, { issueDate: new Date(at.getTime() - COLLATERAL_SETTLE_MS) }),
      ),
    })),
  };
}
