/**
 * attestation/sim/names.ts: what code without the simulator may know of it to name a refusal. The
 * Milan ASK kept as bytes is the one the default seed derives, and it recognises exactly the VCEKs
 * that ASK issued.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { insecureSimulatedAmdHierarchy } from "../../attestation/sim/amd.ts";
import {
  INSECURE_SIMULATOR_MILAN_ASK_BASE64,
  issuedByInsecureSimulatorAsk,
  namesInsecureSimulator,
} from "../../attestation/sim/names.ts";
import { parseCertificate, parseCertificateBytes } from "../../attestation/x509.ts";

describe("attestation/sim/names.ts", () => {
  it("keeps the default seed's Milan ASK, byte for byte", () => {
    expect(INSECURE_SIMULATOR_MILAN_ASK_BASE64).toBe(
      Buffer.from(insecureSimulatedAmdHierarchy(undefined, "Milan").ask).toString("base64"),
    );
  });

  it("recognises a VCEK of the default simulated hierarchy, not a look-alike's nor a real one", async () => {
    const simulated = insecureSimulatedAmdHierarchy();
    expect(await issuedByInsecureSimulatorAsk(parseCertificate(simulated.vcek.certificate))).toBe(true);
    // The simulator's names, another seed's keys: the name matches, the signature does not.
    const lookAlike = parseCertificate(insecureSimulatedAmdHierarchy("cloister-test-other-seed").vcek.certificate);
    expect(namesInsecureSimulator(lookAlike.issuer)).toBe(true);
    expect(await issuedByInsecureSimulatorAsk(lookAlike)).toBe(false);
    const real = parseCertificateBytes(
      new Uint8Array(readFileSync(new URL("../fixtures/attestation/snp/milan-gcp-v5-vcek.pem", import.meta.url))),
    );
    expect(namesInsecureSimulator(real.issuer)).toBe(false);
    expect(await issuedByInsecureSimulatorAsk(real)).toBe(false);
  }, 30_000);
});
