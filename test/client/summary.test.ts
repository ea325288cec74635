/** How the CLI labels what it verified (client/cli/run-client.ts, client/summary.ts). */
import { describe, expect, it } from "vitest";
import { describeEnclave, enclaveSummary } from "../../client/cli/run-client.ts";
import { madeUpEnclave } from "../helpers/verified-enclave.ts";

const enclave = madeUpEnclave;

describe("describeEnclave", () => {
  it("says an Azure measurement is the paravisor's, and says nothing extra on bare SNP or TDX", () => {
    for (const tee of ["azure-snp", "azure-tdx"] as const) {
      expect(describeEnclave(enclave(tee))).toContain(
        `measurement  ${"ab".repeat(48)}  (Azure paravisor's; the guest OS is covered by the pinned vTPM PCRs)`,
      );
    }
    for (const tee of ["sev-snp", "tdx"] as const) {
      const text = describeEnclave(enclave(tee));
      expect(text).toContain(`measurement  ${"ab".repeat(48)}\n`);
      expect(text).not.toContain("paravisor");
    }
  });
});

describe("the model line", () => {
  it("says when the attested manifest seals the model at rest, and under which key", () => {
    const sealed = enclave("sev-snp", { model: { sealedAtRest: true, keyId: "llama-v1" } });
    expect(describeEnclave(sealed)).toContain(
      `model        m.gguf sha256 ${"12".repeat(32)}  (sealed at rest under key "llama-v1": the key broker releases it only to an attested enclave)`,
    );
    const plain = enclave("sev-snp", { model: { sealedAtRest: false, keyId: null } });
    expect(describeEnclave(plain)).toContain(`model        m.gguf sha256 ${"12".repeat(32)}\n`);
  });
});

describe("the TCB line", () => {
  it("gives a TDX enclave's TCB status from the collateral, or says none was checked; SNP has none", () => {
    const checked = enclave("tdx", undefined, {
      tcbStatus: "UpToDate",
      tcbEvaluationDataNumber: 17,
      collateralNextUpdate: "2027-01-01T00:00:00.000Z",
      revocationChecked: true,
    });
    expect(describeEnclave(checked)).toContain(
      "  TCB          UpToDate (Intel collateral, evaluation data 17, next update 2027-01-01T00:00:00.000Z; PCK chain not revoked)\n",
    );
    expect(describeEnclave(enclave("tdx", undefined, { tcbStatus: null }))).toContain(
      "  TCB          not checked: the deployment served no TCB collateral\n",
    );
    expect(describeEnclave(enclave("sev-snp"))).not.toContain("TCB ");
  });
});

/** The attested request policy and audit settings of manifests/examples/dev.json (what `cloister up` signs). */
const devPolicy = {
  requestPolicy: {
    defaultAction: "allow",
    rules: [
      { id: "max-prompt-tokens", kind: "maxPromptTokens", action: "block", limit: 1536 },
      { id: "no-private-keys", kind: "pattern", action: "block", pattern: "-----BEGIN", caseInsensitive: false },
    ],
    pii: { mode: "redact", entities: ["email", "phone"], reason: null },
  },
  audit: { enabled: true, reason: null, recordPromptHash: true, recordResponseHash: false },
};

/** A manifest's request policy and audit with PII filtering and audit off, for the reasons given. */
function allOff(defaultAction: string, rules: unknown[], piiReason: string, auditReason: string) {
  return {
    requestPolicy: { defaultAction, rules, pii: { mode: "off", entities: [], reason: piiReason } },
    audit: { enabled: false, reason: auditReason, recordPromptHash: false, recordResponseHash: false },
  };
}

describe("the rules, PII and audit lines", () => {
  it("say the attested default action, each rule in order (id, action, kind, limit), PII mode and entities, audit", () => {
    const text = describeEnclave(enclave("sev-snp", devPolicy));
    expect(text).toContain(
      "\n  rules        allow by default; the first rule that matches decides: block max-prompt-tokens (maxPromptTokens over 1536), block no-private-keys (pattern)\n",
    );
    expect(text).toContain("\n  PII          redact: email, phone\n");
    expect(text).toContain("\n  audit        on (prompt hash recorded, answer hash not recorded)\n");
  });

  it("say when there are no rules, PII filtering or audit is off and why", () => {
    const text = describeEnclave(
      enclave("sev-snp", allOff("block", [], "no personal data here", "a lab machine only")),
    );
    expect(text).toContain("\n  rules        block by default; no rules\n");
    expect(text).toContain("\n  PII          off: no personal data here\n");
    expect(text).toContain("\n  audit        off: a lab machine only\n");
  });

  it("list at most ten rules and count the rest", () => {
    const rules = Array.from({ length: 12 }, (_, i) => ({ id: `r${i}`, kind: "requestKind", action: "allow" }));
    const many = { ...devPolicy, requestPolicy: { ...devPolicy.requestPolicy, rules } };
    const line = describeEnclave(enclave("sev-snp", many))
      .split("\n")
      .find((l) => l.startsWith("  rules "));
    expect(line).toContain("allow r9 (requestKind), and 2 more in the manifest");
    expect(line).not.toContain("r10");
  });

  it("write what a terminal would act on (an ESC in a rule id, a reason) as visible escapes", () => {
    const rules = [{ id: "x\u001b]52;c;aGk=\u0007", kind: "maxPromptTokens", action: "block", limit: 5 }];
    const text = describeEnclave(enclave("sev-snp", allOff("allow", rules, "why\u202e\u001b[2J", "line\nbreak\u009b")));
    expect(text).toContain("block x\\u001b]52;c;aGk=\\u0007 (maxPromptTokens over 5)");
    expect(text).toContain("off: why\\u202e\\u001b[2J");
    expect(text).toContain("off: line\\u000abreak\\u009b");
    for (const acted of ["\u001b", "\u0007", "\u202e", "\u009b"]) expect(text).not.toContain(acted);
  });

  it("are left out for a manifest that holds no request policy (a check other than the client policy's)", () => {
    const text = describeEnclave(enclave("sev-snp"));
    expect(text).not.toMatch(/\n {2}(rules|PII|audit) /);
  });
});

describe("attest --json's summary", () => {
  it("holds the attested request policy and audit settings, whole, or null when the manifest has none", () => {
    const summary = enclaveSummary(enclave("sev-snp", devPolicy));
    expect(summary.requestPolicy).toEqual(devPolicy.requestPolicy);
    expect(summary.audit).toEqual(devPolicy.audit);
    const none = enclaveSummary(enclave("sev-snp"));
    expect(none.requestPolicy).toBeNull();
    expect(none.audit).toBeNull();
  });
});
