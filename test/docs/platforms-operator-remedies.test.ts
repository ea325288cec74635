/**
 * What docs/platforms.md tells an operator checking captured evidence, run on that evidence: where
 * `verify-evidence --json` puts the Azure vTPM's PCR values a `policy.azure` pins (the text output
 * lists none), and what to pass when a TDX quote's collateral is stale or its signer expired at the
 * verification time. A renamed member, or an option the page names that no longer turns the refusal
 * into a verdict, shows here.
 */

import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "../helpers/cli.ts";
import { inProcessCli } from "../helpers/cli-in-process.ts";
import { pageSection } from "../helpers/doc-pages.ts";

const run = inProcessCli();
const FIXTURES = join(REPO_ROOT, "test", "fixtures", "attestation");

describe("docs/platforms.md: an operator's captured evidence", () => {
  it("names details.pcrs, where --json prints the quoted PCRs by index, and the text output lists none", async () => {
    const bullet = pageSection("docs/platforms.md", "- `pcrs`: PCRs by index", "- `secureBootRequired`");
    expect(bullet).toContain("`verify-evidence --json` prints the quoted values by index in `details.pcrs`");
    const args = [
      "verify-evidence",
      "--tee",
      "azure-snp",
      "--evidence",
      join(FIXTURES, "azure", "snp-vtpm", "genoa-evidence.trustee.json"),
      "--at",
      "2025-06-01T00:00:00Z",
    ];
    const json = await run([...args, "--json"]);
    expect(json.code, json.stderr).toBe(0);
    const pcrs = JSON.parse(json.stdout).details.pcrs as Record<string, string>;
    for (const index of ["4", "7", "11"]) expect(pcrs[index]).toMatch(/^[0-9a-f]{64}$/);
    const text = await run(args);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).not.toContain(pcrs["4"] as string);
  });

  it("stale collateral and an expired signer: the page's two options turn the refusals into a verdict", async () => {
    const remedy = pageSection("docs/platforms.md", "TDX collateral past its `nextUpdate`", "Without `--nonce`");
    expect(remedy).toContain("`CRL_EXPIRED`, `COLLATERAL_EXPIRED`, also with `--at`");
    expect(remedy).toContain("or `--accept-stale-collateral`, which accepts it and reports it stale");
    expect(remedy).toContain("(`COLLATERAL_SIGNER_EXPIRED`");
    expect(remedy).toContain("or `--collateral-signer-validity accept-expired-signer`");
    const base = [
      "verify-evidence",
      "--tee",
      "tdx",
      "--quote",
      join(FIXTURES, "tdx", "quote-v4-trustee-q6.bin"),
      "--collateral",
      join(FIXTURES, "tdx", "collateral"),
      "--at",
      "2025-11-01T00:00:00Z",
    ];
    const plain = await run(base);
    expect(plain.code).toBe(1);
    expect(plain.stderr).toMatch(/^cloister: CRL_EXPIRED: /);
    const stale = await run([...base, "--accept-stale-collateral"]);
    expect(stale.code).toBe(1);
    expect(stale.stderr).toMatch(/^cloister: COLLATERAL_SIGNER_EXPIRED: /);
    const both = await run([
      ...base,
      "--accept-stale-collateral",
      "--collateral-signer-validity",
      "accept-expired-signer",
    ]);
    expect(both.code, both.stderr).toBe(0);
    expect(both.stdout).toMatch(/^ {2}tcb status +OutOfDate$/m);
    // Accepted, but said: the page's "reports it stale", and the expired signer taken.
    expect(both.stdout).toMatch(/^ {2}WARNING: CRL from .* is stale \(nextUpdate /m);
    expect(both.stdout).toMatch(
      /^ {2}WARNING: TCB info signer certificate .* is expired \(accepted: accept-expired-signer\)$/m,
    );
  });
});
