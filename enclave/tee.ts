/**
 * Where the enclave's evidence comes from. Real TEEs go through the providers in
 * attestation/providers/ (configfs-tsm for SNP and TDX); the INSECURE simulator signs real-format
 * SNP reports and TDX quotes with its public-seed hierarchy, so clients verify them with the same
 * code as hardware evidence and accept them only when their policy trusts the simulator.
 */
import { base64url } from "jose";
import { toHex, utf8 } from "../attestation/bytes.ts";
import { AttestationError } from "../attestation/errors.ts";
import type { DocumentEvidence } from "../attestation/evidence.ts";
import { ConfigfsTsmSnpProvider, ConfigfsTsmTdxProvider } from "../attestation/providers/configfs-tsm.ts";
import { snpCertificate } from "../attestation/providers/snp-cert-table.ts";
import { measureEnclave } from "./measure.ts";

export const TEE_MODES = ["snp", "tdx", "azure-snp", "azure-tdx", "sim-snp", "sim-tdx"] as const;
export type TeeMode = (typeof TEE_MODES)[number];

/**
 * Resolves `--tee auto`: configfs-tsm's provider, then the legacy guest devices, then Azure's
 * paravisor (vTPM with the HCL report NV index). Never falls back to the simulator: a machine
 * with no TEE is an error, so a misconfigured production VM cannot start unattested-but-simulated.
 */
export async function detectTeeMode(log: (line: string) => void): Promise<TeeMode> {
  const { detectTee } = await import("../attestation/providers/detect.ts");
  const { createCommandRunner } = await import("../attestation/providers/command-runner.ts");
  const found = await detectTee({ run: createCommandRunner({ timeoutMs: 10_000 }) });
  if (found === null) {
    throw new AttestationError(
      "configuration",
      "TEE_NOT_DETECTED",
      "--tee auto: no SEV-SNP or TDX guest found (no configfs-tsm provider, /dev/sev-guest, /dev/tdx_guest or Azure vTPM HCL report); pass --tee sim-snp or sim-tdx to run the insecure simulator",
    );
  }
  log(`--tee auto: detected ${found}`);
  return found;
}

export interface EvidenceSource {
  readonly mode: TeeMode;
  readonly simulated: boolean;
  /** The launch measurement the evidence will carry, lower-case hex (simulator: known up front). */
  readonly measurement: string | null;
  collect(reportData: Uint8Array): Promise<DocumentEvidence>;
}

/** Creates the evidence source for `mode`. */
export async function createEvidenceSource(mode: TeeMode): Promise<EvidenceSource> {
  switch (mode) {
    case "sim-snp":
    case "sim-tdx":
      return createInsecureSimulatorSource(mode);
    case "snp": {
      const provider = new ConfigfsTsmSnpProvider();
      return {
        mode,
        simulated: false,
        measurement: null,
        async collect(reportData) {
          const raw = await provider.getEvidence(reportData);
          const vcek = snpCertificate(raw.certificates, "VCEK") ?? snpCertificate(raw.certificates, "VLEK");
          if (vcek === undefined) {
            throw new AttestationError(
              "configuration",
              "SNP_NO_ENDORSEMENT_KEY",
              "SEV-SNP: the host provided no VCEK/VLEK in the certificate table (auxblob); configure the host's certificate blob (snphost import) or use a VLEK-provisioned cloud",
            );
          }
          return { type: "sev-snp", report: base64url.encode(raw.report), endorsementKey: base64url.encode(vcek) };
        },
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
          // qualifying data, and the HCL report binds the vTPM key (docs/platforms.md).
          const raw = await provider.getEvidence(reportData);
          return { type: mode, evidence: raw.json };
        },
      };
    }
    case "tdx": {
      const provider = new ConfigfsTsmTdxProvider();
      return {
        mode,
        simulated: false,
        measurement: null,
        async collect(reportData) {
          const raw = await provider.getEvidence(reportData);
          return { type: "tdx", quote: base64url.encode(raw.quote) };
        },
      };
    }
  }
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
    const hierarchy = sim.insecureSimulatedAmdHierarchy();
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
  };
}
