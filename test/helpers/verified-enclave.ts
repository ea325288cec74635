/** A VerifiedEnclave made up for tests of what the client says of one and does with it (no evidence behind it). */
import { VerifiedEnclave } from "../../attestation/document.ts";

export function madeUpEnclave(
  tee: "sev-snp" | "tdx" | "azure-snp" | "azure-tdx",
  manifest: unknown = undefined,
  details: Record<string, unknown> = {},
): VerifiedEnclave {
  return VerifiedEnclave.create({
    tee,
    simulated: false,
    measurement: "ab".repeat(48),
    reportData: "00".repeat(64),
    sealingPublicKey: new Uint8Array(32).fill(1),
    signingPublicKey: new Uint8Array(32).fill(2),
    manifestDigest: "cd".repeat(32),
    documentDigest: "ef".repeat(32),
    manifest: {
      service: { name: "svc", version: "1.0.0" },
      model: { file: "m.gguf", sha256: "12".repeat(32) },
      signerThumbprint: "thumb",
      manifest,
    } as never,
    details,
  });
}
