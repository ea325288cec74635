/**
 * A boot's key request (enclave/model-key.ts requestModelKey) as the model-key tests make it: a
 * simulated TDX boot's public values and a placeholder document, against `kbsUrl`, with `options`
 * over those defaults.
 */
import type { ModelKeyRequest } from "../../enclave/model-key.ts";

export function modelKeyRequest(kbsUrl: string, options: Partial<ModelKeyRequest> = {}): ModelKeyRequest {
  return {
    kbsUrl,
    keyId: "tiny-v1",
    document: "x.y.z",
    documentDigest: "00".repeat(32),
    collateral: null,
    answer: async () => "answer",
    sealingSecretKey: new Uint8Array(32),
    publicValues: {
      tee: "sim-tdx",
      measurementField: "MRTD",
      measurement: "ab".repeat(48),
      modelSha256: "cd".repeat(32),
    },
    timeoutMs: 10_000,
    ...options,
  };
}
