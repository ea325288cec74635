/**
 * What verify-evidence adds to ROOT_NOT_TRUSTED when the evidence is the INSECURE simulator's
 * (default seed): passed to the verifiers as `explainUntrustedRoot`, never imported by them, so the
 * verifiers a browser bundle carries hold no simulator code. verify-evidence imports this file
 * whatever its policy, so the simulator's anchors (anchors.ts: its roots, and through amd.ts its
 * seed) are imported here only for a certificate whose issuer names the simulator, not for real
 * evidence (test/attestation/sim-anchors-graph.test.ts).
 */
import { bytesEqual } from "../bytes.ts";
import type { SnpProduct } from "../snp/parse.ts";
import { type Certificate, verifySignature } from "../x509.ts";
import { isInsecureSimulatorIntelRoot, namesInsecureSimulator as namesSimulator } from "./names.ts";

/**
 * Names what the user passes (verify-evidence's --policy, the one command that prints this): the
 * option and the field where each policy it takes has it (a client policy's attestation section, a
 * bare attestation policy's top level), and the file that `cloister up` writes with it set.
 */
const HINT =
  ": this is INSECURE Cloister simulator evidence, which these trust anchors exclude (to verify it, give --policy FILE with a client policy that has attestation.trustSimulator: true, such as the .cloister/policy.json that cloister up writes, or an attestation policy with trustSimulator: true)";

/**
 * For a VCEK/VLEK the simulator really issued: its issuer names the simulator AND its signature
 * verifies under the simulator's intermediate. The simulator's anchors (the default Milan ones kept
 * as bytes, default-milan.ts; another product's derived, RSA key generation, about a second a key)
 * are built only for a certificate whose issuer names the simulator.
 */
export async function snpSimulatorHint(
  cert: Certificate,
  product: SnpProduct,
  signingKey: "VCEK" | "VLEK",
): Promise<string> {
  if (!namesSimulator(cert.issuer)) return "";
  const { insecureSimulatorAnchors } = await import("./anchors.ts");
  const anchor = insecureSimulatorAnchors(undefined, [product]).snp[0];
  const issuer = signingKey === "VCEK" ? anchor?.ask : anchor?.asvk;
  if (issuer === undefined || issuer === null || !bytesEqual(issuer.subjectDer, cert.issuerDer)) return "";
  if (!(await verifySignature(issuer.publicKey, cert.signatureAlgorithm, cert.signature, cert.tbs))) return "";
  return HINT;
}

/** For a PCK root that is the simulator's, byte for byte (its bytes kept in names.ts: nothing derived). */
export async function tdxSimulatorHint(root: Certificate): Promise<string> {
  return isInsecureSimulatorIntelRoot(root) ? HINT : "";
}
