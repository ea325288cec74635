/**
 * Naming a refused simulated TDX quote loads no simulator: the SDK's and the key broker's
 * verification (client/policy.ts verifyWithClientPolicy, under the pinned roots) recognises the
 * simulator's Intel root from its bytes (attestation/sim/names.ts), so attestation/sim/anchors.ts
 * (the simulator's roots and its seed) is never loaded into them. Run in a child process with a
 * module hook recording every module loaded, so the whole module graph is seen, not a mock's view.
 */
import { describe, expect, it } from "vitest";
import { moduleUrl, REPO, runRecordingModules } from "../helpers/loaded-modules.ts";

/** A simulated TDX document refused under a policy that does not trust the simulator. */
const SCRIPT = `import nacl from "tweetnacl";
const repo = ${JSON.stringify(REPO.href)};
const { insecureSimulatedIntelHierarchy } = await import(repo + "attestation/sim/intel.ts");
const { simulateTdxQuote } = await import(repo + "attestation/sim/tdx-quote.ts");
const { createAttestationDocument } = await import(repo + "attestation/document.ts");
const { simulatorClientPolicy } = await import(repo + "client/dev-policy.ts");
const { isInsecureSimulatorEvidence, verifyWithClientPolicy } = await import(repo + "client/policy.ts");
await import(repo + "attestation/kbs/broker.ts");
const b64 = (bytes) => Buffer.from(bytes).toString("base64url");
const bytes = (n, f) => Uint8Array.from({ length: n }, (_, i) => (f + i) & 0xff);
const quote = simulateTdxQuote(insecureSimulatedIntelHierarchy(), {
  reportData: bytes(64, 1), mrtd: bytes(48, 0x30), rtmrs: [0, 1, 2, 3].map((n) => bytes(48, n * 48)),
});
const evidence = { type: "tdx", quote: b64(quote) };
const keys = { signing: nacl.sign.keyPair(), sealing: nacl.box.keyPair() };
const now = new Date();
const document = await createAttestationDocument({ keys, evidence, manifest: "not.read.jws", maaToken: null, now });
const policy = simulatorClientPolicy({
  tee: "sim-tdx",
  measurement: "30".repeat(48),
  operatorKey: { kty: "OKP", crv: "Ed25519", x: b64(new Uint8Array(32)) },
  modelSha256: "0".repeat(64),
  serviceName: "svc",
});
const pinned = { ...policy, attestation: { ...policy.attestation, trustSimulator: false } };
const code = await verifyWithClientPolicy(document, pinned, { value: new Uint8Array(32), answer: "x" }, now).then(
  () => "accepted",
  (error) => error.code,
);
console.log(JSON.stringify({ code, named: await isInsecureSimulatorEvidence(evidence) }));
`;

describe("naming a refused simulated TDX quote", () => {
  it("names it SIMULATED_EVIDENCE_NOT_TRUSTED without loading attestation/sim/anchors.ts", async () => {
    const result = await runRecordingModules(["--import", "tsx", "--input-type=module", "--eval", SCRIPT]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    // The hook saw the production modules (so it would have seen the simulator's)...
    for (const file of ["client/policy.ts", "attestation/kbs/broker.ts", "attestation/sim/names.ts"]) {
      expect(result.loaded).toContain(moduleUrl(file));
    }
    // ...and not the simulator's roots.
    expect(result.loaded.filter((url) => url.includes("/attestation/sim/anchors.ts"))).toEqual([]);
    expect(JSON.parse(result.stdout)).toEqual({ code: "SIMULATED_EVIDENCE_NOT_TRUSTED", named: true });
  });
});
