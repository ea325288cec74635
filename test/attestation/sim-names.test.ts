/**
 * attestation/sim/names.ts: what code without the simulator may know of it to name a refusal. The
 * Milan ASK and the Intel root kept as bytes are the ones the default seed derives; the ASK
 * recognises exactly the VCEKs it issued, the root exactly the PCK chains that end at it.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { insecureSimulatedAmdHierarchy } from "../../attestation/sim/amd.ts";
import { insecureSimulatorAnchors } from "../../attestation/sim/anchors.ts";
import { insecureSimulatedIntelHierarchy } from "../../attestation/sim/intel.ts";
import {
  endsAtInsecureSimulatorIntelRoot,
  INSECURE_SIMULATOR_INTEL_ROOT_BASE64,
  INSECURE_SIMULATOR_MILAN_ASK_BASE64,
  issuedByInsecureSimulatorAsk,
  namesInsecureSimulator,
} from "../../attestation/sim/names.ts";
import { simulateTdxQuote } from "../../attestation/sim/tdx-quote.ts";
import { parseTdxQuote } from "../../attestation/tdx/parse.ts";
import { parseCertificate, parseCertificateBytes } from "../../attestation/x509.ts";
import { MRTD, REPORT_DATA, RTMRS } from "./sim-helpers.ts";

const pckChainOf = (hierarchy: ReturnType<typeof insecureSimulatedIntelHierarchy>) =>
  parseTdxQuote(simulateTdxQuote(hierarchy, { reportData: REPORT_DATA, mrtd: MRTD, rtmrs: RTMRS })).pckChain;

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
  });

  it("keeps the default seed's Intel root, byte for byte", () => {
    expect(INSECURE_SIMULATOR_INTEL_ROOT_BASE64).toBe(
      Buffer.from(insecureSimulatorAnchors().tdx[0]?.root.der ?? new Uint8Array()).toString("base64"),
    );
  });

  it("recognises a PCK chain that ends at the default simulated root, not a look-alike's nor a real one", async () => {
    const simulated = pckChainOf(insecureSimulatedIntelHierarchy());
    expect(await endsAtInsecureSimulatorIntelRoot(simulated)).toBe(true);
    // The simulator's names, another seed's keys: the root is another certificate.
    const lookAlike = pckChainOf(insecureSimulatedIntelHierarchy("cloister-test-other-seed"));
    expect(namesInsecureSimulator(lookAlike[2].subject)).toBe(true);
    expect(await endsAtInsecureSimulatorIntelRoot(lookAlike)).toBe(false);
    // The simulator's root copied under another seed's CA: the CA's signature does not verify under it.
    expect(await endsAtInsecureSimulatorIntelRoot([lookAlike[0], lookAlike[1], simulated[2]])).toBe(false);
    const real = parseTdxQuote(
      new Uint8Array(readFileSync(new URL("../fixtures/attestation/tdx/quote-v4-trustee.bin", import.meta.url))),
    ).pckChain;
    expect(await endsAtInsecureSimulatorIntelRoot(real)).toBe(false);
  });
});
