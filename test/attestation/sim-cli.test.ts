/**
 * `cloister verify-evidence` on simulated evidence: rejected under the pinned roots; accepted, and
 * reported as simulated, only with a policy that explicitly trusts the simulator.
 */
import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { toHex } from "../../attestation/bytes.ts";
import { insecureSimulatedAmdHierarchy, simulateSnpReport } from "../../attestation/sim/index.ts";
import { simulatorAttestationPolicy } from "../../client/dev-policy.ts";
import { testDirectory } from "../helpers/test-directory.ts";

const run = promisify(execFile);
const CLI = new URL("../../bin/cloister.js", import.meta.url).pathname;
const dir = await testDirectory("cloister-sim-cli-");

beforeAll(async () => {
  const hierarchy = insecureSimulatedAmdHierarchy();
  const measurement = new Uint8Array(48).fill(0x42);
  await writeFile(
    join(dir, "report.bin"),
    simulateSnpReport(hierarchy, { reportData: new Uint8Array(64).fill(1), measurement }),
  );
  await writeFile(join(dir, "vcek.der"), hierarchy.vcek.certificate);
  await writeFile(join(dir, "policy.json"), JSON.stringify(simulatorAttestationPolicy("sim-snp", toHex(measurement))));
});

async function verify(extra: string[]): Promise<{ code: number; json: Record<string, unknown> }> {
  const args = [
    CLI,
    "verify-evidence",
    "--tee",
    "snp",
    "--report",
    join(dir, "report.bin"),
    "--cert",
    join(dir, "vcek.der"),
    "--json",
    ...extra,
  ];
  try {
    const { stdout } = await run(process.execPath, args);
    return { code: 0, json: JSON.parse(stdout) };
  } catch (error) {
    const e = error as { code: number; stdout: string };
    return { code: e.code, json: JSON.parse(e.stdout) };
  }
}

describe("verify-evidence on simulated SNP evidence", () => {
  it("is rejected under the pinned AMD roots", async () => {
    const { code, json } = await verify([]);
    expect(code).toBe(1);
    expect(json).toMatchObject({ valid: false, stage: "verify", code: "ROOT_NOT_TRUSTED" });
  });

  it("is accepted, and says simulated, only with a policy that trusts the simulator", async () => {
    const { code, json } = await verify(["--policy", join(dir, "policy.json")]);
    expect(json).toMatchObject({ valid: true, simulated: true, measurement: "42".repeat(48) });
    expect(code).toBe(0);
  });
});
