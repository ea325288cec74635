/**
 * A policy that does not trust the simulator, shown simulated evidence, refuses it as
 * SIMULATED_EVIDENCE_NOT_TRUSTED (the fix is trustSimulator, for development only), not as an
 * unknown root; and only evidence the simulator's roots really verify is called simulated.
 */
import { readFileSync } from "node:fs";
import { base64url } from "jose";
import nacl from "tweetnacl";
import { afterEach, describe, expect, it } from "vitest";
import { createAttestationDocument, DOCUMENT_TYPE } from "../../attestation/document.ts";
import { type DocumentEvidence, parseDocumentEvidence } from "../../attestation/evidence.ts";
import {
  insecureSimulatedAmdHierarchy,
  insecureSimulatedIntelHierarchy,
  simulateSnpReport,
  simulateTdxQuote,
} from "../../attestation/sim/index.ts";
import { ClientError } from "../../client/errors.ts";
import { isInsecureSimulatorEvidence, verifyWithClientPolicy } from "../../client/policy.ts";
import { MEASUREMENT, MRTD, REPORT_DATA, RTMRS } from "../attestation/sim-helpers.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { closeServers, connectTo, devPolicy } from "./helpers.ts";

afterEach(closeServers);

/** A document's `evidence` member, checked as parseDocumentEvidence checks it. */
function documentWith(evidence: Record<string, string>): DocumentEvidence {
  return parseDocumentEvidence(evidence);
}

const read = (path: string) =>
  new Uint8Array(readFileSync(new URL(`../fixtures/attestation/${path}`, import.meta.url)));

function pemToDer(pem: Uint8Array): Uint8Array {
  const text = new TextDecoder().decode(pem);
  return Buffer.from(text.replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, ""), "base64");
}

describe("connect() with a policy that does not trust the simulator", () => {
  for (const tee of ["sim-snp", "sim-tdx"] as const) {
    it(`${tee}: refuses with SIMULATED_EVIDENCE_NOT_TRUSTED naming trustSimulator, and seals nothing`, async () => {
      const policy = await devPolicy(tee);
      const strict = { ...policy, attestation: { ...policy.attestation, trustSimulator: false } };
      const paths: string[] = [];
      const error = await rejectionOf(connectTo({ tee, connect: { policy: strict }, paths }), ClientError);
      expect(error).toMatchObject({ kind: "attestation", code: "SIMULATED_EVIDENCE_NOT_TRUSTED", stage: "appraise" });
      // The SDK's message names the stage, then the verifier's own message.
      expect((error as Error).message).toMatch(
        /^attestation failed at stage appraise: evidence: expected hardware evidence, found evidence of the INSECURE Cloister simulator/,
      );
      expect((error as Error).message).toContain("attestation.trustSimulator: false");
      // And what to do, in words true for the CLI, the SDK and the web page alike.
      expect((error as Error).message).toMatch(
        /\(attestation\.trustSimulator: false\); this enclave runs on the simulator: use a policy that trusts it for local development \(`cloister up` writes one: \.cloister\/policy\.json\) or a deployment on SEV-SNP or TDX hardware$/,
      );
      // The verifier's own refusal stays attached.
      expect(((error as Error).cause as Error).cause).toMatchObject({ code: "ROOT_NOT_TRUSTED", stage: "verify" });
      expect(paths.some((p) => p.includes("sealed"))).toBe(false);
      expect(paths).toContain("/attestation");
    });
  }
});

describe("verifyWithClientPolicy with a policy that does not trust the simulator", () => {
  const keys = { signing: nacl.sign.keyPair(), sealing: nacl.box.keyPair() };
  const nonce = { value: new Uint8Array(32), answer: "unused: an earlier stage fails" };
  const snpDocument = (seed?: string) => {
    const hierarchy = insecureSimulatedAmdHierarchy(seed);
    const evidence = {
      type: "sev-snp",
      report: base64url.encode(simulateSnpReport(hierarchy, { reportData: REPORT_DATA, measurement: MEASUREMENT })),
      endorsementKey: base64url.encode(hierarchy.vcek.certificate),
    } as const;
    return createAttestationDocument({ keys, evidence, manifest: "not.read.jws", maaToken: null, now: new Date() });
  };
  const strictPolicy = async () => {
    const policy = await devPolicy("sim-snp");
    return { ...policy, attestation: { ...policy.attestation, trustSimulator: false } };
  };
  const refusal = async (document: string) =>
    rejectionOf(verifyWithClientPolicy(document, await strictPolicy(), nonce, new Date()), Error);

  it("names the simulator only for its own evidence: a look-alike chain stays ROOT_NOT_TRUSTED", async () => {
    expect(await refusal(await snpDocument())).toMatchObject({ code: "SIMULATED_EVIDENCE_NOT_TRUSTED" });
    expect(await refusal(await snpDocument("cloister-test-other-seed"))).toMatchObject({
      code: "ROOT_NOT_TRUSTED",
      stage: "verify",
    });
  });

  it("names the simulator only for a refused root: a document that fails its own checks keeps its code", async () => {
    const [, payload, signature] = (await snpDocument()).split(".");
    const header = base64url.encode(JSON.stringify({ alg: "ES256", typ: DOCUMENT_TYPE }));
    expect(await refusal(`${header}.${payload}.${signature}`)).toMatchObject({
      code: "DOCUMENT_BAD_ALGORITHM",
      stage: "document",
    });
  });
});

describe("isInsecureSimulatorEvidence", () => {
  const snpEvidence = (hierarchy: ReturnType<typeof insecureSimulatedAmdHierarchy>) => ({
    type: "sev-snp",
    report: base64url.encode(simulateSnpReport(hierarchy, { reportData: REPORT_DATA, measurement: MEASUREMENT })),
    endorsementKey: base64url.encode(hierarchy.vcek.certificate),
  });
  const tdxEvidence = (hierarchy: ReturnType<typeof insecureSimulatedIntelHierarchy>) => ({
    type: "tdx",
    quote: base64url.encode(simulateTdxQuote(hierarchy, { reportData: REPORT_DATA, mrtd: MRTD, rtmrs: RTMRS })),
  });

  it("is true for SEV-SNP and TDX evidence of the simulator's default roots", async () => {
    expect(await isInsecureSimulatorEvidence(documentWith(snpEvidence(insecureSimulatedAmdHierarchy())))).toBe(true);
    expect(await isInsecureSimulatorEvidence(documentWith(tdxEvidence(insecureSimulatedIntelHierarchy())))).toBe(true);
  });

  it("is false for a look-alike chain: the simulator's names, another seed's keys", async () => {
    const seed = "cloister-test-other-seed";
    expect(await isInsecureSimulatorEvidence(documentWith(snpEvidence(insecureSimulatedAmdHierarchy(seed))))).toBe(
      false,
    );
    expect(await isInsecureSimulatorEvidence(documentWith(tdxEvidence(insecureSimulatedIntelHierarchy(seed))))).toBe(
      false,
    );
  });

  it("is false for genuine hardware evidence, and for what is not evidence", async () => {
    const genuine = documentWith({
      type: "sev-snp",
      report: base64url.encode(read("snp/milan-gcp-v5-report.bin")),
      endorsementKey: base64url.encode(pemToDer(read("snp/milan-gcp-v5-vcek.pem"))),
    });
    expect(await isInsecureSimulatorEvidence(genuine)).toBe(false);
    const quote = documentWith({ type: "tdx", quote: base64url.encode(read("tdx/quote-v4-trustee.bin")) });
    expect(await isInsecureSimulatorEvidence(quote)).toBe(false);
    for (const junk of [
      documentWith({ type: "azure-snp", evidence: "AAAA" }),
      documentWith({ type: "sev-snp", report: "AAAA", endorsementKey: "AAAA" }),
      documentWith({ type: "tdx", quote: "AAAA" }),
    ]) {
      expect(await isInsecureSimulatorEvidence(junk)).toBe(false);
    }
  });
});
