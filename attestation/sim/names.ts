import { bytesEqual } from "../bytes.ts";
import { base64ToBytes, type Certificate, parseCertificate, verifySignature } from "../x509.ts";

/**
 * The name every simulated certificate carries (in its subject and issuer organization). Alone in
 * this module, with no key or seed, so code that must not carry the simulator (a browser build
 * without it) can still recognise simulated evidence in order to name it in a refusal.
 */
export const INSECURE_SIMULATOR_ORGANIZATION = "Cloister Insecure Simulator";

/**
 * How a refusal of the simulator's evidence begins, wherever it is refused (the SDK's
 * SIMULATED_EVIDENCE_NOT_TRUSTED, `policy init`'s POLICY_INIT_SIMULATED): each then says what to do.
 */
export const INSECURE_SIMULATOR_EVIDENCE_FOUND =
  "evidence: expected hardware evidence, found evidence of the INSECURE Cloister simulator (anyone can forge it)";

/** Whether a certificate name (`O=…,CN=…` as parsed) names the simulator's organization. */
export function namesInsecureSimulator(name: string): boolean {
  return name.split(",").includes(`O=${INSECURE_SIMULATOR_ORGANIZATION}`);
}

/**
 * The simulator's Milan ASK (the default seed's; public, as the whole simulated hierarchy is), kept
 * as bytes so a VCEK it issued is recognised without deriving the hierarchy (RSA key generation,
 * about a second of blocked event loop). test/attestation/sim-names.test.ts checks it is the
 * derived one.
 */
export const INSECURE_SIMULATOR_MILAN_ASK_BASE64 = [
  "MIIErTCCA1ygAwIBAgIDAQABMEYGCSqGSIb3DQEBCjA5oA8wDQYJYIZIAWUDBAICBQChHDAaBgkqhkiG9w0BAQgwDQYJYIZI",
  "AWUDBAICBQCiAwIBMKMDAgEBMIGLMR8wHQYDVQQLDBZTSU1VTEFURUQgLSBOT1QgU0VDVVJFMQswCQYDVQQGEwJVUzEUMBIG",
  "A1UEBwwLU2FudGEgQ2xhcmExCzAJBgNVBAgMAkNBMSQwIgYDVQQKDBtDbG9pc3RlciBJbnNlY3VyZSBTaW11bGF0b3IxEjAQ",
  "BgNVBAMMCUFSSy1NaWxhbjAeFw0yNDAxMDEwMDAwMDBaFw00OTAxMDEwMDAwMDBaMIGLMR8wHQYDVQQLDBZTSU1VTEFURUQg",
  "LSBOT1QgU0VDVVJFMQswCQYDVQQGEwJVUzEUMBIGA1UEBwwLU2FudGEgQ2xhcmExCzAJBgNVBAgMAkNBMSQwIgYDVQQKDBtD",
  "bG9pc3RlciBJbnNlY3VyZSBTaW11bGF0b3IxEjAQBgNVBAMMCVNFVi1NaWxhbjCCASIwDQYJKoZIhvcNAQEBBQADggEPADCC",
  "AQoCggEBAKyLooZFTiNpAeeHhQdDpcoQacGrtG5UWQEauQHBREKYpgxMdFXsET4KV2mwpvG7+6mMbXM2jD+jQlyr0IqyKYSw",
  "ph/L6AAp/BbShu7ZsYxvpTGtgnwQ4r6oND0eVCHJeBc12yxu6U2FHaBHDB0uWIwyVogAWz77UoIVBC26vhZuzzTjEcnUMlm5",
  "RbGquXq0Av7y/pRrIh6zpVs/gd4eV2mhP3dJvZINUDRfNzwTqq2CkPREXxMdOltvlDjeru85O2Y0PcVbJztWzjGJDeNN941O",
  "s4XpgdKlD25Tn0zxrT4EMKYYLb802QiS+qpKmgRdVpF8efPJJi1abHQimN7QWW8CAwEAAaOBpTCBojAdBgNVHQ4EFgQUvJbq",
  "QRdH1+OYWRYU/xhsVcEqTvcwHwYDVR0jBBgwFoAUHm6mzgzcBzNPA0Wkw/ArfOvtbZswEgYDVR0TAQH/BAgwBgEB/wIBADAO",
  "BgNVHQ8BAf8EBAMCAAQwPAYDVR0fBDUwMzAxoC+gLYYraHR0cHM6Ly9zaW11bGF0b3IuaW52YWxpZC92Y2VrL3YxL01pbGFu",
  "L2NybDBGBgkqhkiG9w0BAQowOaAPMA0GCWCGSAFlAwQCAgUAoRwwGgYJKoZIhvcNAQEIMA0GCWCGSAFlAwQCAgUAogMCATCj",
  "AwIBAQOCAQEAX/BT+kHVB5hZ2tIO6iHWetJoxJLmsW75U8xoJQcSTwFMM4iVrmlelxoM1haNnCyswBH5zk8XaIMNkePbKznu",
  "qQdEpHCuGgCWbEZaOiH2f7/l6b2XhZtBF7oCU/4uSEkZtI0BS0+79yOynoMbwo/1qUCQWwqUO5Ot1AuGz+2kPLrvIpIpo4p5",
  "j+gnH+pHf0DEuOxtH/AZMDOFaNULCC/KbjwIIcHSVfvqG4XNQ1Cl/yqZzT1nGkzjLcS6l9aQfx4dwSEUpQld+aGE25/yv2Xy",
  "0ztw/NIJKN4OP07fxGPWtabWQOuxVj5PTXAe3JxVOWkenIowCiJvFQKadAOlQabXTg==",
].join("");

/**
 * The simulator's Intel SGX root CA (the default seed's; public), the root of every simulated PCK
 * chain, kept as bytes so a simulated TDX quote is recognised without loading the simulator
 * (attestation/sim/anchors.ts). test/attestation/sim-names.test.ts checks it is the derived one.
 */
export const INSECURE_SIMULATOR_INTEL_ROOT_BASE64 = [
  "MIIC1TCCAnugAwIBAgIUT6Ngmt62ugRRQGTBds1/pTrFU2gwCgYIKoZIzj0EAwIwgZMxGjAYBgNVBAMMEUludGVsIFNHWCBS",
  "b290IENBMR8wHQYDVQQLDBZTSU1VTEFURUQgLSBOT1QgU0VDVVJFMSQwIgYDVQQKDBtDbG9pc3RlciBJbnNlY3VyZSBTaW11",
  "bGF0b3IxFDASBgNVBAcMC1NhbnRhIENsYXJhMQswCQYDVQQIDAJDQTELMAkGA1UEBhMCVVMwHhcNMjQwMTAxMDAwMDAwWhcN",
  "NDkxMjMxMjM1OTU5WjCBkzEaMBgGA1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExHzAdBgNVBAsMFlNJTVVMQVRFRCAtIE5PVCBT",
  "RUNVUkUxJDAiBgNVBAoMG0Nsb2lzdGVyIEluc2VjdXJlIFNpbXVsYXRvcjEUMBIGA1UEBwwLU2FudGEgQ2xhcmExCzAJBgNV",
  "BAgMAkNBMQswCQYDVQQGEwJVUzBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABIm8g5JHXd6WEIjP6D5B9HcQsxQ+6zBhk6Q7",
  "eP1s/wL2xps5DprtuWY7JjwE7Z/4GLCIOADlYkuxqe9vwa+zBFmjgaowgacwHwYDVR0jBBgwFoAUs0aPYOjKDeVLkTW0a6J5",
  "0VBsJpUwQQYDVR0fBDowODA2oDSgMoYwaHR0cHM6Ly9zaW11bGF0b3IuaW52YWxpZC9zZ3gvSW50ZWxTR1hSb290Q0EuZGVy",
  "MB0GA1UdDgQWBBSzRo9g6MoN5UuRNbRronnRUGwmlTAOBgNVHQ8BAf8EBAMCAAYwEgYDVR0TAQH/BAgwBgEB/wIBATAKBggq",
  "hkjOPQQDAgNIADBFAiAnNxgpNCe9OZCUOiuOn7ASNgCfOvSoT0Y0ONOKbIOaCAIhANGKz4C/e/MRhkPj61nLUDpPe0ItTrkM",
  "W971v+hPsfuA",
].join("");

let milanAsk: Certificate | undefined;
let intelRoot: Uint8Array | undefined;

/** Whether `issuer` issued `cert`: `cert` names it as issuer, and its signature verifies under its key. */
async function issuedBy(issuer: Certificate, cert: Certificate): Promise<boolean> {
  return (
    bytesEqual(issuer.subjectDer, cert.issuerDer) &&
    (await verifySignature(issuer.publicKey, cert.signatureAlgorithm, cert.signature, cert.tbs))
  );
}

/**
 * Whether `cert` (a VCEK) was issued by the INSECURE simulator's Milan ASK: its issuer names the
 * simulator, is that ASK, and the ASK's signature verifies. Used only to name a refusal.
 */
export async function issuedByInsecureSimulatorAsk(cert: Certificate): Promise<boolean> {
  if (!namesInsecureSimulator(cert.issuer)) return false;
  milanAsk ??= parseCertificate(base64ToBytes(INSECURE_SIMULATOR_MILAN_ASK_BASE64));
  return issuedBy(milanAsk, cert);
}

/** Whether `root` is, byte for byte, the INSECURE simulator's Intel root. Used only to name a refusal. */
export function isInsecureSimulatorIntelRoot(root: Certificate): boolean {
  intelRoot ??= base64ToBytes(INSECURE_SIMULATOR_INTEL_ROOT_BASE64);
  return bytesEqual(intelRoot, root.der);
}

/**
 * Whether a PCK chain (leaf, CA, root, as a TDX quote's certification data carries it) ends at the
 * INSECURE simulator's Intel root: the root is that certificate, byte for byte, and the CA's
 * signature verifies under it. Used only to name a refusal.
 */
export async function endsAtInsecureSimulatorIntelRoot(
  chain: readonly [Certificate, Certificate, Certificate],
): Promise<boolean> {
  const [, ca, root] = chain;
  return isInsecureSimulatorIntelRoot(root) && (await issuedBy(root, ca));
}
