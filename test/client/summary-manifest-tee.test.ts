/**
 * What `cloister attest` shows of the verified manifest's tee section (client/summary.ts teeFacts,
 * client/cli/run-client.ts): the allowed launch measurements, the minimum TCB of the evidence's
 * family and the policy flags, as text rows and as attest --json's manifestTee; left out of the
 * shorter summary the demo, chat and proxy print.
 */
import { describe, expect, it } from "vitest";
import { stringifyJsonVisibly } from "../../attestation/untrusted-text.ts";
import { describeEnclave, enclaveSummary } from "../../client/cli/run-client.ts";
import { madeUpEnclave } from "../helpers/verified-enclave.ts";

const listed = ["ab".repeat(48), "cd".repeat(48)];

/** A manifest's tee section (manifests/schema.ts), both families' minimums given. */
function teeSection(allowedMeasurements: unknown, flags: { migrationAgentAllowed: boolean; smtAllowed: boolean }) {
  return {
    tee: {
      platforms: ["sim-snp", "sim-tdx"],
      allowedMeasurements,
      minimumTcb: {
        snp: { bootloader: 3, tee: 0, snp: 14, microcode: 209, fmc: null },
        tdx: { teeTcbSvn: `0b01${"00".repeat(14)}`, pceSvn: 11, qeSvn: 8 },
      },
      policyFlags: { debugAllowed: false, ...flags },
    },
  };
}

const rowsOf = (text: string) =>
  text.split("\n").filter((line) => /^ {2}(measurements|minimum TCB|TEE flags) /.test(line));

describe("attest's rows for the manifest's tee section", () => {
  it("sim-snp: the allowed MEASUREMENTs shortened (this enclave's marked), the SNP minimum, the SNP flags", () => {
    const manifest = teeSection(listed, { migrationAgentAllowed: false, smtAllowed: true });
    const text = describeEnclave(madeUpEnclave("sev-snp", manifest), { manifestTee: true });
    expect(rowsOf(text)).toEqual([
      "  measurements manifest allows MEASUREMENT abababababababab… (this enclave's), cdcdcdcdcdcdcdcd…",
      "  minimum TCB  manifest requires SNP bootloader 3, TEE 0, SNP 14, microcode 209 or above (of the reported, launch and committed TCB each)",
      "  TEE flags    manifest: debug not allowed, migration agent not allowed, SMT allowed",
    ]);
  });

  it("sim-tdx: the allowed MRTDs or any with its reason, the TDX minimum, the TDX flags (SMT not reported)", () => {
    const reason = "development on the simulator: its measurement changes";
    const manifest = teeSection({ any: true, reason }, { migrationAgentAllowed: true, smtAllowed: false });
    const text = describeEnclave(madeUpEnclave("tdx", manifest), { manifestTee: true });
    expect(rowsOf(text)).toEqual([
      `  measurements manifest allows any MRTD (reason: ${reason})`,
      `  minimum TCB  manifest requires TDX TEE_TCB_SVN 0b01${"00".repeat(14)}, PCE SVN 11, QE SVN 8 or above`,
      "  TEE flags    manifest: debug not allowed, migratable TD allowed, SMT not reported by TDX (a TDX manifest must allow it)",
    ]);
    const list = describeEnclave(
      madeUpEnclave("tdx", teeSection(listed, { migrationAgentAllowed: false, smtAllowed: true })),
      {
        manifestTee: true,
      },
    );
    expect(rowsOf(list)[0]).toBe(
      "  measurements manifest allows MRTD abababababababab… (this enclave's), cdcdcdcdcdcdcdcd…",
    );
  });

  it("names an SNP FMC minimum where the manifest gives one, and counts measurements past the eighth", () => {
    const many = Array.from({ length: 11 }, (_, i) => i.toString(16).padStart(2, "0").repeat(48));
    const manifest = teeSection(many, { migrationAgentAllowed: false, smtAllowed: false });
    manifest.tee.minimumTcb.snp = { bootloader: 1, tee: 2, snp: 3, microcode: 4, fmc: 5 } as never;
    const rows = rowsOf(describeEnclave(madeUpEnclave("sev-snp", manifest), { manifestTee: true }));
    expect(rows[0]).toMatch(/07070707070707\d\d…, and 3 more in the manifest$/);
    expect(rows[0]).not.toContain("08080808");
    expect(rows[1]).toBe(
      "  minimum TCB  manifest requires SNP bootloader 1, TEE 2, SNP 3, microcode 4, FMC 5 or above (of the reported, launch and committed TCB each)",
    );
    expect(rows[2]).toBe("  TEE flags    manifest: debug not allowed, migration agent not allowed, SMT not allowed");
  });

  it("keeps the enclave's own measurement in view, marked, when the manifest lists it past the eighth", () => {
    // madeUpEnclave's measurement is "ab" repeated: the manifest lists it 12th of 15.
    const own = "ab".repeat(48);
    const many = Array.from({ length: 15 }, (_, i) => (i === 11 ? own : i.toString(16).padStart(2, "0").repeat(48)));
    const manifest = teeSection(many, { migrationAgentAllowed: false, smtAllowed: true });
    const row = rowsOf(describeEnclave(madeUpEnclave("sev-snp", manifest), { manifestTee: true }))[0];
    const firstSeven = many.slice(0, 7).map((m) => `${m.slice(0, 16)}…`);
    expect(row).toBe(
      `  measurements manifest allows MEASUREMENT ${firstSeven.join(", ")}, ${own.slice(0, 16)}… (this enclave's), and 7 more in the manifest`,
    );
    expect(row).not.toContain("07070707");
  });

  it("writes a control character in the manifest's reason as a visible escape (text and --json)", () => {
    const manifest = teeSection(
      { any: true, reason: "sim\u001b]52;c;aGk=\u0007 only\u202e\nx" },
      {
        migrationAgentAllowed: false,
        smtAllowed: true,
      },
    );
    const enclave = madeUpEnclave("sev-snp", manifest);
    const text = describeEnclave(enclave, { manifestTee: true });
    expect(rowsOf(text)[0]).toBe(
      "  measurements manifest allows any MEASUREMENT (reason: sim\\u001b]52;c;aGk=\\u0007 only\\u202e\\u000ax)",
    );
    const json = stringifyJsonVisibly(enclaveSummary(enclave), 2);
    for (const acted of ["\u001b", "\u0007", "\u202e"]) {
      expect(text).not.toContain(acted);
      expect(json).not.toContain(acted);
    }
  });

  it("are left out of the shorter summary (demo, chat, proxy) and for a manifest without a tee section", () => {
    const manifest = teeSection(listed, { migrationAgentAllowed: false, smtAllowed: true });
    expect(rowsOf(describeEnclave(madeUpEnclave("sev-snp", manifest)))).toEqual([]);
    expect(rowsOf(describeEnclave(madeUpEnclave("sev-snp"), { manifestTee: true }))).toEqual([]);
  });
});

describe("attest --json's manifestTee", () => {
  it("holds the manifest's allowed measurements, minimum TCBs and policy flags as signed (sim-snp, sim-tdx)", () => {
    const reason = "development on the simulator: its measurement changes";
    for (const [tee, allowed] of [
      ["sev-snp", listed],
      ["tdx", { any: true, reason }],
    ] as const) {
      const manifest = teeSection(allowed, { migrationAgentAllowed: false, smtAllowed: true });
      const { allowedMeasurements, minimumTcb, policyFlags } = manifest.tee;
      expect(enclaveSummary(madeUpEnclave(tee, manifest)).manifestTee).toEqual({
        allowedMeasurements,
        minimumTcb,
        policyFlags,
      });
    }
    expect(enclaveSummary(madeUpEnclave("sev-snp")).manifestTee).toBeNull();
  });
});
