/**
 * The INSECURE simulator's default endorsement key: the VCEK of the default seed's Milan hierarchy,
 * what the enclave's sim-snp evidence source signs its reports with. Its private key is derived from
 * the public seed (cheap: P-384); its certificate is kept as bytes, because issuing it takes the
 * simulated ASK, and deriving the RSA keys of ARK, ASK and ASVK blocked the enclave's event loop
 * about 3 s early in every simulator boot. The bytes are public, as the whole simulated hierarchy
 * is, and they are measured with the rest of attestation/: trusting them is trusting this code.
 * test/attestation/sim-default-vcek.test.ts checks that they are the hierarchy's VCEK, byte for
 * byte, and that the enclave's evidence is the evidence the hierarchy signs.
 */
import { bytesEqual } from "../bytes.ts";
import { base64ToBytes, parseCertificate } from "../x509.ts";
import {
  deriveEndorsementKey,
  INSECURE_SIMULATOR_DEFAULT_SEED,
  type InsecureSimulatedAmdHierarchy,
  simulatedPlatform,
} from "./amd.ts";

/** The default seed's Milan VCEK certificate (DER), as insecureSimulatedAmdHierarchy() issues it. */
export const INSECURE_SIMULATOR_MILAN_VCEK_BASE64 = [
  "MIIEbzCCAx6gAwIBAgIBADBGBgkqhkiG9w0BAQowOaAPMA0GCWCGSAFlAwQCAgUAoRwwGgYJKoZIhvcNAQEIMA0GCWCGSAFl",
  "AwQCAgUAogMCATCjAwIBATCBizEfMB0GA1UECwwWU0lNVUxBVEVEIC0gTk9UIFNFQ1VSRTELMAkGA1UEBhMCVVMxFDASBgNV",
  "BAcMC1NhbnRhIENsYXJhMQswCQYDVQQIDAJDQTEkMCIGA1UECgwbQ2xvaXN0ZXIgSW5zZWN1cmUgU2ltdWxhdG9yMRIwEAYD",
  "VQQDDAlTRVYtTWlsYW4wHhcNMjQwMTAxMDAwMDAwWhcNNDgxMjMxMDAwMDAwWjCBijEfMB0GA1UECwwWU0lNVUxBVEVEIC0g",
  "Tk9UIFNFQ1VSRTELMAkGA1UEBhMCVVMxFDASBgNVBAcMC1NhbnRhIENsYXJhMQswCQYDVQQIDAJDQTEkMCIGA1UECgwbQ2xv",
  "aXN0ZXIgSW5zZWN1cmUgU2ltdWxhdG9yMREwDwYDVQQDDAhTRVYtVkNFSzB2MBAGByqGSM49AgEGBSuBBAAiA2IABCsjkCqY",
  "FE7u+aDwwRmF0J4AkC1iHkfZ1F8/QYItR4uyarqVj20sZwsFXuEleuM8VBBTX6Wd3sB+9bZ/rrbmPTS842gUWuQl+yxNhOXi",
  "PbCYoBDWiOFpscbmysslAaYhE6OCARcwggETMBAGCSsGAQQBnHgBAQQDAgEAMBcGCSsGAQQBnHgBAgQKFghNaWxhbi1CMDAR",
  "BgorBgEEAZx4AQMBBAMCAQQwEQYKKwYBBAGceAEDAgQDAgEAMBEGCisGAQQBnHgBAwQEAwIBADARBgorBgEEAZx4AQMFBAMC",
  "AQAwEQYKKwYBBAGceAEDBgQDAgEAMBEGCisGAQQBnHgBAwcEAwIBADARBgorBgEEAZx4AQMDBAMCARgwEgYKKwYBBAGceAED",
  "CAQEAgIA2zBNBgkrBgEEAZx4AQQEQMtC6+4ns82kBeE63a5aeKRKvHLIVWJYhyjaP05EG8yAjx37McsjgB5GuwgLxnsVPfZx",
  "XHwO4rYhdxhxtNJNfIgwRgYJKoZIhvcNAQEKMDmgDzANBglghkgBZQMEAgIFAKEcMBoGCSqGSIb3DQEBCDANBglghkgBZQME",
  "AgIFAKIDAgEwowMCAQEDggEBAAoYLhxG9yZUg9BmFkIwW50yNhWvxFFxnuvSBAk6zkI6B/GkQ9AH92ZtLHENonaHf8zErgyA",
  "mprafjfwBmfyiRrZ0Ajag6lIRFjV+kc7sgMFWOQGwRGDlVc/BcC6eVQI5oSQgNY/3WirKwlL1ZYby/f0Qkt4yj90JS5WTgdo",
  "/+58fzvPuNrM2KSb3qw7M7ecV7ypMteDW4H49ojef4jPH5Jvs7QodOh76DJ5eRWc/qH34vXs64Y0kPIS+sIefcP9X2ttb4/9",
  "Oa1lQ7q5eG2u93RHCtZvojFPX2xYkMSB9KPJ1xojBkoIUPQmoTU/UGOm246zjuEMtibMHIqkgXU4QG4=",
].join("");

/** What signs a simulated SNP report: the hierarchy's seed (REPORT_ID) and its endorsement key. */
export type InsecureSimulatedSnpSigner = Pick<InsecureSimulatedAmdHierarchy, "seed" | "vcek">;

let defaultSigner: InsecureSimulatedSnpSigner | undefined;

/**
 * The default seed's Milan VCEK, as insecureSimulatedAmdHierarchy().vcek, without generating the
 * hierarchy's RSA keys. Throws if the kept certificate does not certify the derived key (the
 * simulated platform changed and the bytes were not updated).
 */
export function insecureSimulatedDefaultSigner(): InsecureSimulatedSnpSigner {
  if (defaultSigner !== undefined) return defaultSigner;
  const seed = INSECURE_SIMULATOR_DEFAULT_SEED;
  const product = "Milan";
  const { defaultChipId: chipId, defaultTcb: tcb } = simulatedPlatform(seed, product);
  const key = deriveEndorsementKey(seed, "VCEK", product, chipId, tcb);
  const certificate = base64ToBytes(INSECURE_SIMULATOR_MILAN_VCEK_BASE64);
  const certified = parseCertificate(certificate).publicKey;
  if (certified.kind !== "ec" || !bytesEqual(certified.spki, key.spki)) {
    throw new Error(
      "simulated VCEK: expected the kept certificate (INSECURE_SIMULATOR_MILAN_VCEK_BASE64) to certify the key derived for the default seed's Milan platform, found another key: update the bytes",
    );
  }
  defaultSigner = Object.freeze({
    seed,
    vcek: Object.freeze({ kind: "VCEK", product, key, certificate, chipId, tcb }),
  });
  return defaultSigner;
}
