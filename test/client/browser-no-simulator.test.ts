/**
 * A `--no-simulator` browser bundle (buildBrowserBundle("sdk", { simulator: false }), what `cloister
 * bundle --no-simulator` writes) shown a simulated deployment under a policy that does not trust the
 * simulator: it names the evidence simulated (SIMULATED_EVIDENCE_NOT_TRUSTED, from the two simulator
 * certificates it keeps), not an unknown root, and seals nothing. The bundle is imported in Node:
 * its transport is fetch wherever it runs, so no browser is needed.
 */
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { buildBrowserBundle } from "../../client/web/bundle.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { testDirectory } from "../helpers/test-directory.ts";
import { closeServers, devPolicy, serveDeployment } from "./helpers.ts";

const dir = await testDirectory("cloister-browser-no-simulator-");
let bundle: typeof import("../../client/browser.ts");
let bundleFile: string;

beforeAll(async () => {
  const { code } = await buildBrowserBundle("sdk", { simulator: false });
  bundleFile = join(dir, "cloister-browser.js");
  await writeFile(bundleFile, code);
  bundle = await import(pathToFileURL(bundleFile).href);
});
afterEach(closeServers);

describe("a --no-simulator bundle shown simulated evidence", () => {
  it("refuses it as SIMULATED_EVIDENCE_NOT_TRUSTED under a policy that does not trust the simulator, sealing nothing", async () => {
    expect(await readFile(bundleFile, "utf8")).not.toContain("cloister-insecure-simulator");
    const { url, paths } = await serveDeployment();
    const policy = await devPolicy("sim-snp");
    const strict = JSON.parse(
      JSON.stringify({ ...policy, attestation: { ...policy.attestation, trustSimulator: false } }),
    );
    const error = await rejectionOf(
      bundle.connect({ url, policy: bundle.parseClientPolicy(strict), apiKey: "ck_no_simulator_0123456789" }),
      bundle.ClientError,
    );
    expect(error).toMatchObject({ kind: "attestation", code: "SIMULATED_EVIDENCE_NOT_TRUSTED", stage: "appraise" });
    expect((error as Error).message).toContain("attestation.trustSimulator: false");
    expect(paths).toContain("/v1/attestation");
    expect(paths.some((path) => path.includes("sealed"))).toBe(false);
  });
});
