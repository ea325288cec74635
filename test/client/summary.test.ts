/** How the CLI labels what it verified (client/cli/run-client.ts, client/summary.ts). */
import { describe, expect, it } from "vitest";
import { describeEnclave } from "../../client/cli/run-client.ts";
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
