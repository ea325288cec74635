/**
 * docs/platforms.md, "Azure and GCP (or bare metal) under one policy": the page's jq, run on a GCP
 * run's client policy (the page's own policy for the captured GCP SEV-SNP report) and an Azure run's
 * (what `policy init` writes from the captured Azure SNP evidence), must give one client policy that
 * accepts both captured pieces of evidence, each platform's pins kept whole, while neither input
 * alone accepts the other's. A join that drops a section, keeps one run's `acceptedEvidence` or lets
 * one run's trust in the simulator through shows here.
 */

import { execFile } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { parseAzureEvidence } from "../../attestation/azure/evidence.ts";
import { verifyAzureEvidence } from "../../attestation/azure/verify.ts";
import type { VerifiedDocumentEvidence } from "../../attestation/evidence.ts";
import { attestationPolicyFromEvidence } from "../../attestation/policy-from-evidence.ts";
import { AMD_ROOTS } from "../../attestation/roots/amd.ts";
import { INTEL_ROOTS } from "../../attestation/roots/intel.ts";
import { parseClientPolicy } from "../../client/policy.ts";
import { REPO_ROOT } from "../helpers/cli.ts";
import { inProcessCli } from "../helpers/cli-in-process.ts";

const run = inProcessCli();
const FIXTURES = join(REPO_ROOT, "test", "fixtures", "attestation");
const PAGE = readFileSync(join(REPO_ROOT, "docs", "platforms.md"), "utf8");
const GCP_REPORT = ["--tee", "snp", "--report", join(FIXTURES, "snp", "milan-gcp-v5-report.bin")];
const GCP_ARGS = [
  ...GCP_REPORT,
  "--cert",
  join(FIXTURES, "snp", "milan-gcp-v5-vcek.pem"),
  "--at",
  "2026-01-01T00:00:00Z",
];
const AZURE_EVIDENCE = join(FIXTURES, "azure", "snp-vtpm", "genoa-evidence.trustee.json");
const AZURE_ARGS = ["--tee", "azure-snp", "--evidence", AZURE_EVIDENCE, "--at", "2026-01-01T00:00:00Z"];

let dir: string | null = null;
afterEach(() => {
  if (dir !== null) rmSync(dir, { recursive: true, force: true });
  dir = null;
});

/** The page's join command, from its paragraph: one jq over policy-gcp.json and policy-azure.json. */
function joinCommand(): string {
  const from = PAGE.indexOf("**Azure and GCP (or bare metal) under one policy.**");
  expect(from, "docs/platforms.md: the paragraph").toBeGreaterThanOrEqual(0);
  const command = /\n(jq -s '[^']*' \\\n {2}policy-gcp\.json policy-azure\.json > policy\.json)\n/.exec(
    PAGE.slice(from),
  );
  expect(command, "the page's jq command").not.toBeNull();
  return (command as RegExpExecArray)[1] as string;
}

/** The page's attestation policy for the captured GCP report ("A policy for captured evidence"). */
function gcpAttestation(): Record<string, unknown> {
  const rest = PAGE.slice(PAGE.indexOf("**A policy for captured evidence.**"));
  const json = /^```json\n([\s\S]*?)^```$/m.exec(rest);
  expect(json, "the page's policy for captured evidence").not.toBeNull();
  return JSON.parse((json as RegExpExecArray)[1] as string);
}

/** What `policy init --allow-console` pins from the captured Azure SNP evidence (every fixture has a console). */
async function azureAttestation(): Promise<Record<string, unknown>> {
  const evidence = parseAzureEvidence(readFileSync(AZURE_EVIDENCE, "utf8"));
  const verified = await verifyAzureEvidence({
    evidence,
    at: new Date("2026-01-01T00:00:00Z"),
    expectedNonce: null,
    snpAnchors: AMD_ROOTS,
    tdxAnchors: INTEL_ROOTS,
  });
  const document = { type: verified.kind, evidence: verified, simulated: false } as unknown as VerifiedDocumentEvidence;
  const { policy } = attestationPolicyFromEvidence(document, { allowSimulator: false, allowConsole: true });
  return JSON.parse(JSON.stringify(policy));
}

/** A client policy as `policy init` writes it, around an attestation section. */
function clientPolicy(acceptedEvidence: string, attestation: Record<string, unknown>, signer: JsonWebKey) {
  return {
    version: 1,
    acceptedEvidence: [acceptedEvidence],
    attestation,
    manifest: {
      trustedSigners: [{ ...signer, alg: "EdDSA", use: "sig" }],
      allowedModelDigests: ["ab".repeat(32)],
      allowedServices: ["cloister-dev"],
    },
    freshness: { maxClockSkewSeconds: 120 },
  };
}

async function verify(args: readonly string[], policy: string) {
  return run(["verify-evidence", ...args, "--policy", policy]);
}

describe("docs/platforms.md: one policy for Azure and GCP", () => {
  it("the page's jq joins a GCP and an Azure run into a policy that accepts both, each pin kept", async () => {
    const workDir = mkdtempSync(join(tmpdir(), "cloister-cloud-join-"));
    dir = workDir;
    const signer = generateKeyPairSync("ed25519").publicKey.export({ format: "jwk" });
    const gcp = clientPolicy("sev-snp", gcpAttestation(), signer);
    const azure = clientPolicy("azure-snp", await azureAttestation(), signer);
    const join2 = async (first: unknown, second: unknown) => {
      writeFileSync(join(workDir, "policy-gcp.json"), JSON.stringify(first));
      writeFileSync(join(workDir, "policy-azure.json"), JSON.stringify(second));
      await promisify(execFile)("sh", ["-c", joinCommand()], { cwd: workDir });
      return JSON.parse(readFileSync(join(workDir, "policy.json"), "utf8"));
    };
    const joined = await join2(gcp, azure);

    expect([...parseClientPolicy(joined).acceptedEvidence].sort()).toEqual(["azure-snp", "sev-snp"]);
    expect(joined.attestation.snp).toEqual(gcp.attestation.snp);
    expect(joined.attestation.azure).toEqual(azure.attestation.azure);
    expect(joined.manifest).toEqual(gcp.manifest);
    for (const args of [GCP_ARGS, AZURE_ARGS]) {
      const result = await verify(args, join(workDir, "policy.json"));
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toMatch(/^ {2}appraisal +policy satisfied$/m);
    }
    // Neither run alone accepts the other's evidence: the join is what does.
    writeFileSync(join(workDir, "gcp-only.json"), JSON.stringify(gcp));
    writeFileSync(join(workDir, "azure-only.json"), JSON.stringify(azure));
    expect((await verify(AZURE_ARGS, join(workDir, "gcp-only.json"))).stderr).toContain("TEE_NOT_ACCEPTED");
    expect((await verify(GCP_ARGS, join(workDir, "azure-only.json"))).stderr).toContain("TEE_NOT_ACCEPTED");

    // A run that trusts the simulator does not make the join trust it, whichever run it is.
    for (const index of [0, 1]) {
      const inputs = structuredClone([gcp, azure]);
      for (const [i, input] of inputs.entries())
        input.attestation = { ...input.attestation, trustSimulator: i === index };
      expect((await join2(inputs[0], inputs[1])).attestation.trustSimulator).toBe(false);
    }
    // A run whose clock skews an operator tightened keeps them tight in the join, whichever run it is.
    for (const index of [0, 1]) {
      const inputs = structuredClone([gcp, azure]).map((input, i) =>
        i === index
          ? {
              ...input,
              attestation: { ...input.attestation, maximumVerificationSkewSeconds: 60 },
              freshness: { maxClockSkewSeconds: 30 },
            }
          : input,
      );
      const tight = parseClientPolicy(await join2(inputs[0], inputs[1]));
      expect(
        { skew: tight.attestation.maximumVerificationSkewSeconds, clock: tight.freshness.maxClockSkewSeconds },
        `run ${index} tightened`,
      ).toEqual({ skew: 60, clock: 30 });
    }
  });
});
