/** Simulated SEV-SNP and TDX enclaves' attestation documents (and for SNP the simulator client policy that accepts it). */
import { base64url } from "jose";
import { computeReportData } from "../../attestation/binding.ts";
import { toHex } from "../../attestation/bytes.ts";
import { createAttestationDocument, type EnclaveKeys } from "../../attestation/document.ts";
import {
  insecureSimulatedAmdHierarchy,
  insecureSimulatedIntelHierarchy,
  type SimulatedTdxQuoteOptions,
  simulateSnpReport,
  simulateTdxQuote,
} from "../../attestation/sim/index.ts";
import { simulatorClientPolicy } from "../../client/dev-policy.ts";
import type { ClientPolicy } from "../../client/policy.ts";
import { devManifest } from "../../manifests/dev.ts";
import { manifestDigest } from "../../manifests/digest.ts";
import type { Manifest } from "../../manifests/schema.ts";
import { generateManifestSigningKey, signManifest } from "../../manifests/sign.ts";

export interface SimulatedSnpEnclave {
  /** The operator-signed dev manifest (compact JWS) the evidence binds. */
  readonly manifestJws: string;
  /** The simulated SNP report, its REPORT_DATA binding `keys` and the manifest. */
  readonly report: Uint8Array;
  /** The simulated VCEK (DER). */
  readonly vcek: Uint8Array;
  /** The attestation document signed by `keys` at `now`. */
  readonly document: string;
  /** The simulator client policy (trustSimulator: true) pinning `measurement` and the operator key. */
  readonly policy: ClientPolicy;
}

export async function simulatedSnpEnclave(options: {
  keys: EnclaveKeys;
  now: Date;
  measurement: Uint8Array;
  /** The manifest the operator signs (default: the dev manifest). */
  manifest?: Manifest;
}): Promise<SimulatedSnpEnclave> {
  const { keys, now, measurement } = options;
  const operator = await generateManifestSigningKey("EdDSA");
  const manifest = options.manifest ?? devManifest();
  const manifestJws = await signManifest(manifest, operator.privateJwk);
  const hierarchy = insecureSimulatedAmdHierarchy();
  const reportData = await computeReportData({
    signingPublicKey: keys.signing.publicKey,
    sealingPublicKey: keys.sealing.publicKey,
    manifestDigest: await manifestDigest(manifestJws),
  });
  const report = simulateSnpReport(hierarchy, { reportData, measurement });
  const vcek = hierarchy.vcek.certificate;
  const document = await createAttestationDocument({
    keys,
    evidence: { type: "sev-snp", report: base64url.encode(report), endorsementKey: base64url.encode(vcek) },
    manifest: manifestJws,
    maaToken: null,
    now,
  });
  const policy = simulatorClientPolicy({
    tee: "sim-snp",
    measurement: toHex(measurement),
    operatorKey: operator.publicJwk,
    modelSha256: manifest.model.sha256,
    serviceName: manifest.service.name,
  });
  return { manifestJws, report, vcek, document, policy };
}

/**
 * A simulated TD's attestation document signed by `keys` at `now`, its quote's REPORT_DATA binding
 * `keys` and `manifestJws`, of MRTD `mrtd` with zero RTMRs, then `quote`'s options.
 */
export async function simulatedTdxDocument(options: {
  keys: EnclaveKeys;
  manifestJws: string;
  mrtd: Uint8Array;
  now: Date;
  quote?: Partial<SimulatedTdxQuoteOptions>;
}): Promise<string> {
  const { keys, manifestJws, mrtd, now, quote = {} } = options;
  const reportData = await computeReportData({
    signingPublicKey: keys.signing.publicKey,
    sealingPublicKey: keys.sealing.publicKey,
    manifestDigest: await manifestDigest(manifestJws),
  });
  const zero = new Uint8Array(48);
  const bytes = simulateTdxQuote(insecureSimulatedIntelHierarchy(), {
    reportData,
    mrtd,
    rtmrs: [zero, zero, zero, zero],
    ...quote,
  });
  return createAttestationDocument({
    keys,
    evidence: { type: "tdx", quote: base64url.encode(bytes) },
    manifest: manifestJws,
    maaToken: null,
    now,
  });
}
