/**
 * README ("Auditing the verification code"): the simulator's roots and seed (attestation/sim/anchors.ts,
 * and through it sim/amd.ts) are loaded only when a policy trusts the simulator. Checked in child
 * processes with a module hook recording every module loaded (the whole module graph, not a mock's
 * view), for the two ways evidence is verified:
 * - `cloister verify-evidence` on real AMD and Intel evidence with no policy (before, its simulator
 *   hint, sim/hint.ts, imported the whole simulator through sim/index.ts whatever the evidence);
 * - the client's verification (client/policy.ts verifyWithClientPolicy) of a simulated SEV-SNP
 *   document: refused as SIMULATED_EVIDENCE_NOT_TRUSTED without loading anchors.ts under a policy
 *   that does not trust the simulator, and loading it under one that does (so the hook would see it).
 * test/client/simulator-naming-graph.test.ts checks a refused simulated TDX quote the same way.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { base64url } from "jose";
import nacl from "tweetnacl";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAttestationDocument } from "../../attestation/document.ts";
import { insecureSimulatedAmdHierarchy, simulateSnpReport } from "../../attestation/sim/index.ts";
import { simulatorClientPolicy } from "../../client/dev-policy.ts";
import { moduleUrl, REPO, runRecordingModules } from "../helpers/loaded-modules.ts";
import { MEASUREMENT, REPORT_DATA } from "./sim-helpers.ts";

const F = "test/fixtures/attestation";

/** Verifies the document in CLOISTER_TEST_INPUT under the policy there, as a client does; prints the refusal's code. */
const VERIFY_SCRIPT = `import { readFileSync } from "node:fs";
const repo = ${JSON.stringify(REPO.href)};
const { verifyWithClientPolicy } = await import(repo + "client/policy.ts");
const { document, policy, at } = JSON.parse(readFileSync(process.env.CLOISTER_TEST_INPUT, "utf8"));
const code = await verifyWithClientPolicy(document, policy, { value: new Uint8Array(32), answer: "x" }, new Date(at)).then(
  () => "accepted",
  (error) => error.code,
);
console.log(JSON.stringify({ code }));
`;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cloister-anchors-graph-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** `cloister verify-evidence` on real evidence (README's examples), with no policy. */
const REAL_EVIDENCE = [
  {
    tee: "snp",
    args: ["--report", `${F}/snp/milan-gcp-v5-report.bin`, "--cert", `${F}/snp/milan-gcp-v5-vcek.pem`],
    at: "2026-01-01T00:00:00Z",
  },
  {
    tee: "tdx",
    args: ["--quote", `${F}/tdx/quote-v4-trustee.bin`, "--collateral", `${F}/tdx/collateral`],
    at: "2023-07-01T00:00:00Z",
  },
];

describe("verify-evidence on real evidence, no policy", () => {
  it.each(REAL_EVIDENCE)(
    "$tee: VALID, and of the simulator only its names are loaded (not anchors.ts nor its seed)",
    async ({ tee, args, at }) => {
      const result = await runRecordingModules(
        ["bin/cloister.js", "verify-evidence", "--tee", tee, ...args, "--at", at],
        { NO_COLOR: "1" },
      );
      expect(result.stderr).toBe("");
      expect(result.code).toBe(0);
      expect(result.stdout).toContain(`${tee}: VALID`);
      // The hook saw the verifier (so it would have seen the simulator's anchors)...
      expect(result.loaded).toContain(moduleUrl(`attestation/${tee}/verify.ts`));
      // ...and of the simulator only what names it in a refusal.
      expect(result.sim).toEqual(["attestation/sim/hint.ts", "attestation/sim/names.ts"]);
    },
  );
});

describe("a client verifying a simulated SEV-SNP document", () => {
  const AT = new Date("2026-01-01T00:00:00Z");

  async function input(name: string, trustSimulator: boolean): Promise<string> {
    const hierarchy = insecureSimulatedAmdHierarchy();
    const report = simulateSnpReport(hierarchy, { reportData: REPORT_DATA, measurement: MEASUREMENT });
    const evidence = {
      type: "sev-snp" as const,
      report: base64url.encode(report),
      endorsementKey: base64url.encode(hierarchy.vcek.certificate),
    };
    const keys = { signing: nacl.sign.keyPair(), sealing: nacl.box.keyPair() };
    const document = await createAttestationDocument({
      keys,
      evidence,
      manifest: "not.read.jws",
      maaToken: null,
      now: AT,
    });
    const policy = simulatorClientPolicy({
      tee: "sim-snp",
      measurement: Buffer.from(MEASUREMENT).toString("hex"),
      operatorKey: { kty: "OKP", crv: "Ed25519", x: base64url.encode(new Uint8Array(32)) },
      modelSha256: "0".repeat(64),
      serviceName: "svc",
    });
    const file = join(dir, `${name}.json`);
    const given = { ...policy, attestation: { ...policy.attestation, trustSimulator } };
    await writeFile(file, JSON.stringify({ document, policy: given, at: AT.toISOString() }));
    return file;
  }

  const verify = (file: string) =>
    runRecordingModules(["--import", "tsx", "--input-type=module", "--eval", VERIFY_SCRIPT], {
      CLOISTER_TEST_INPUT: file,
    });

  it("under a policy that does not trust the simulator: refused, anchors.ts never loaded", async () => {
    const result = await verify(await input("pinned", false));
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ code: "SIMULATED_EVIDENCE_NOT_TRUSTED" });
    expect(result.loaded).toContain(moduleUrl("client/policy.ts"));
    expect(result.sim).toEqual(["attestation/sim/names.ts"]);
  });

  it("under a policy that trusts it: anchors.ts is loaded (the check above can see it)", async () => {
    const result = await verify(await input("trusting", true));
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    // Past the chain (the simulator's root is trusted): refused later, at the nonce answer or the manifest.
    expect(JSON.parse(result.stdout).code).not.toBe("SIMULATED_EVIDENCE_NOT_TRUSTED");
    expect(result.sim).toContain("attestation/sim/anchors.ts");
  });
});
