/**
 * The INSECURE simulator's default Milan hierarchy, kept as bytes where deriving it is slow: the
 * RSA keys of its ARK, ASK and ASVK (deterministic key generation, sim/rsa.ts) take about 3 s of
 * blocked event loop, which every simulator boot paid (the enclave, to issue the VCEK it signs with)
 * and every verifier of its evidence (the key broker at the boot's key request, the client), only
 * for certificates that never change. Kept here: the VCEK certificate (its private key is derived
 * from the public seed: P-384, cheap) and the ARK and ASVK certificates (the ASK's are in names.ts).
 * The bytes are public, as the whole simulated hierarchy is, and measured with the rest of
 * attestation/: trusting them is trusting this code. test/attestation/sim-default-milan.test.ts
 * checks that they are the derived ones, byte for byte, and that the enclave's evidence is the
 * evidence the derived hierarchy signs.
 */
import { bytesEqual } from "../bytes.ts";
import { base64ToBytes, parseCertificate } from "../x509.ts";
import {
  deriveEndorsementKey,
  INSECURE_SIMULATOR_DEFAULT_SEED,
  type InsecureSimulatedAmdHierarchy,
  simulatedPlatform,
} from "./amd.ts";
import { INSECURE_SIMULATOR_MILAN_ASK_BASE64 } from "./names.ts";

/** The default seed's Milan ARK certificate (DER), as insecureSimulatedAmdHierarchy() issues it. */
export const INSECURE_SIMULATOR_MILAN_ARK_BASE64 = [
  "MIIEiDCCAzegAwIBAgIDAQAAMEYGCSqGSIb3DQEBCjA5oA8wDQYJYIZIAWUDBAICBQChHDAaBgkqhkiG9w0BAQgwDQYJYIZI",
  "AWUDBAICBQCiAwIBMKMDAgEBMIGLMR8wHQYDVQQLDBZTSU1VTEFURUQgLSBOT1QgU0VDVVJFMQswCQYDVQQGEwJVUzEUMBIG",
  "A1UEBwwLU2FudGEgQ2xhcmExCzAJBgNVBAgMAkNBMSQwIgYDVQQKDBtDbG9pc3RlciBJbnNlY3VyZSBTaW11bGF0b3IxEjAQ",
  "BgNVBAMMCUFSSy1NaWxhbjAeFw0yNDAxMDEwMDAwMDBaFw00OTAxMDEwMDAwMDBaMIGLMR8wHQYDVQQLDBZTSU1VTEFURUQg",
  "LSBOT1QgU0VDVVJFMQswCQYDVQQGEwJVUzEUMBIGA1UEBwwLU2FudGEgQ2xhcmExCzAJBgNVBAgMAkNBMSQwIgYDVQQKDBtD",
  "bG9pc3RlciBJbnNlY3VyZSBTaW11bGF0b3IxEjAQBgNVBAMMCUFSSy1NaWxhbjCCASIwDQYJKoZIhvcNAQEBBQADggEPADCC",
  "AQoCggEBAJtd/OhReY9V1uRvkirHUmw7Ar0q6dkv5VcDugoycjamEM5YBxbv4gC7mcMTbgj6YNE5rinY+rp1M9cM53ph/lC9",
  "4FjC/1iV07/EhD7tuh3u73pmuwgVui+6vHvBjUbMLoaEHMcejh4nz1i8r5fr3BERGsbdVQAJAurood9qbpkdurj5j0pMNqs1",
  "mct/0unFFUuQk3pJeOvNaGnuJ088FxlDEeXB4PaJCZt0IyNmcEZpWT+seDEDRUfBDTuVOsc6SlBiBX2mnpwD5SLikHglHso1",
  "uq9zQvp1XNPHcqAxrR67VGnYAVoX/cvLgLC6IidExlaA8QOp9pVQG5yx4es5ulsCAwEAAaOBgDB+MA4GA1UdDwEB/wQEAwIA",
  "BjAdBgNVHQ4EFgQUHm6mzgzcBzNPA0Wkw/ArfOvtbZswDwYDVR0TAQH/BAUwAwEB/zA8BgNVHR8ENTAzMDGgL6AthitodHRw",
  "czovL3NpbXVsYXRvci5pbnZhbGlkL3ZjZWsvdjEvTWlsYW4vY3JsMEYGCSqGSIb3DQEBCjA5oA8wDQYJYIZIAWUDBAICBQCh",
  "HDAaBgkqhkiG9w0BAQgwDQYJYIZIAWUDBAICBQCiAwIBMKMDAgEBA4IBAQCKc/8+VZ8Y9EJVunCgN39mGA6KQ0EYpaGJyys5",
  "HPGAUrTFUAOBCUFMXV36J3J/a7XZ6bZ2KWnnpSQ/iloJ5fRHTC3+OHPnNEYTxX6M0zW5shWrOMd7481NvxBEkKgiv1Iqoi1W",
  "JeeOLUI14F6pgy2m0nEVNzSyjv8ICKI9x/81w693oyrpIbXrZwDCRcEqWdgQJiNwBVVB7HfBZEfU7i215xONHi6E5mI9wkP7",
  "s3Ou5Nyfo4OkseSuX+8RON5B/9V3oUYvz+ob03AmN/ci43u5J+sDYdhKjnmFuqA0kt5soi3r0eHwYQjZPp20/IxbwFXGCKAy",
  "md7ZhAoHnP999UKD",
].join("");

/** The default seed's Milan ASVK certificate (DER), as insecureSimulatedAmdHierarchy() issues it. */
export const INSECURE_SIMULATOR_MILAN_ASVK_BASE64 = [
  "MIIEsjCCA2GgAwIBAgIDAQACMEYGCSqGSIb3DQEBCjA5oA8wDQYJYIZIAWUDBAICBQChHDAaBgkqhkiG9w0BAQgwDQYJYIZI",
  "AWUDBAICBQCiAwIBMKMDAgEBMIGLMR8wHQYDVQQLDBZTSU1VTEFURUQgLSBOT1QgU0VDVVJFMQswCQYDVQQGEwJVUzEUMBIG",
  "A1UEBwwLU2FudGEgQ2xhcmExCzAJBgNVBAgMAkNBMSQwIgYDVQQKDBtDbG9pc3RlciBJbnNlY3VyZSBTaW11bGF0b3IxEjAQ",
  "BgNVBAMMCUFSSy1NaWxhbjAeFw0yNDAxMDEwMDAwMDBaFw00OTAxMDEwMDAwMDBaMIGQMR8wHQYDVQQLDBZTSU1VTEFURUQg",
  "LSBOT1QgU0VDVVJFMQswCQYDVQQGEwJVUzEUMBIGA1UEBwwLU2FudGEgQ2xhcmExCzAJBgNVBAgMAkNBMSQwIgYDVQQKDBtD",
  "bG9pc3RlciBJbnNlY3VyZSBTaW11bGF0b3IxFzAVBgNVBAMMDlNFVi1WTEVLLU1pbGFuMIIBIjANBgkqhkiG9w0BAQEFAAOC",
  "AQ8AMIIBCgKCAQEAwxkJjpB3JWfSsrNws9eIP3wrT/tzQa3yKukkg1dQvJxqVbKYLEa2EDWplEm6HbtX9f2jL2q3G9rOZdaZ",
  "I9/gHx86h3nOKrcbZ4zvu22LR8VF8s+gpUtttBzB0xESlPVVKl3N/3dKqp3OPt3K8IuNok+tY9XalvKHUQdjVPQNLHR0XFnb",
  "9//HllT6AqrZ9+gNoeP7sDWR5f2K2vi0P9HRDQY8fyFtCO14pL5Tcz2tm1jgW/vU+FFLy7GEBzA8P/n0OEZ82O34Ldn1H6LH",
  "l2hIfy4F2RazuTMoD+7nRSE5BUxnzpG+KDxkedVfcJu8irfYv5rvELTjjPU7HglRU+aeywIDAQABo4GlMIGiMB0GA1UdDgQW",
  "BBR7v4M0Bpu//HWrtoMSuR9QpX/+4jAfBgNVHSMEGDAWgBQebqbODNwHM08DRaTD8Ct86+1tmzASBgNVHRMBAf8ECDAGAQH/",
  "AgEAMA4GA1UdDwEB/wQEAwIABDA8BgNVHR8ENTAzMDGgL6AthitodHRwczovL3NpbXVsYXRvci5pbnZhbGlkL3ZjZWsvdjEv",
  "TWlsYW4vY3JsMEYGCSqGSIb3DQEBCjA5oA8wDQYJYIZIAWUDBAICBQChHDAaBgkqhkiG9w0BAQgwDQYJYIZIAWUDBAICBQCi",
  "AwIBMKMDAgEBA4IBAQA28tDBwHWk2bO2x6d+TJjFeX5ZnG7QhUa/dquFKaJqhewfoASkyLxTpUjKXHBs+CXj706gqVEFHR0P",
  "j6mV38/RkAj/5Y+IwklDLnvZqFWj2LBhxl2bElbHAmyZRNuhorJUbyRtvehyEJdR5J158QMd/0wnLXcFjiObPYazcb5h/00T",
  "wA1+aloTxs/xY00hBug6Qg77hzV8EjmBxp0mA6eRRJ/Vwv54/fwQXl70yn/yaaYaaMX7zFHtdRITCXSDEnM0IoqM1u5Lkq7k",
  "445s9K/DSlG7kWTDz19/Q6W+qORh+GznM3qmW+r4xc+pF2HXjfe8lRk9HwsYAlQk1O11tQ0W",
].join("");

/** The default seed's Milan CA certificates (DER), as insecureSimulatedAmdHierarchy() issues them. */
export function insecureSimulatedDefaultMilanCas(): Pick<InsecureSimulatedAmdHierarchy, "ark" | "ask" | "asvk"> {
  return {
    ark: base64ToBytes(INSECURE_SIMULATOR_MILAN_ARK_BASE64),
    ask: base64ToBytes(INSECURE_SIMULATOR_MILAN_ASK_BASE64),
    asvk: base64ToBytes(INSECURE_SIMULATOR_MILAN_ASVK_BASE64),
  };
}

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
