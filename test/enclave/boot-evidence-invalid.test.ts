/**
 * The enclave's own evidence that does not parse stops the boot with a boot code
 * (BOOT_EVIDENCE_INVALID, enclave/service.ts), naming the evidence type, the parse error kept as the
 * cause: not a bare ParseError without a code. The simulator's report is cut short to make it so.
 */
import { base64url } from "jose";
import { describe, expect, it, vi } from "vitest";
import { ParseError } from "../../attestation/errors.ts";
import { EnclaveError } from "../../enclave/errors.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { bootWith, ScriptedEngine } from "./helpers.ts";

vi.mock("../../enclave/tee.ts", async (importOriginal) => {
  const original = await importOriginal<typeof import("../../enclave/tee.ts")>();
  return {
    ...original,
    createEvidenceSource: async (...args: Parameters<typeof original.createEvidenceSource>) => {
      const source = await original.createEvidenceSource(...args);
      const collect = source.collect.bind(source);
      return Object.assign(source, {
        async collect(reportData: Uint8Array) {
          const evidence = await collect(reportData);
          if (evidence.type !== "sev-snp") throw new Error("expected the simulated SNP evidence");
          return { ...evidence, report: base64url.encode(base64url.decode(evidence.report).subarray(0, 100)) };
        },
      });
    },
  };
});

describe("the enclave's own evidence that does not parse", () => {
  it("stops the boot with BOOT_EVIDENCE_INVALID, the parse error its cause", async () => {
    const error = await rejectionOf(bootWith(new ScriptedEngine(() => []), 0, {}, "sim-snp"), EnclaveError);
    expect(error.code).toBe("BOOT_EVIDENCE_INVALID");
    expect(error.message).toMatch(
      /^boot: this launch's evidence \(sev-snp\): expected a report or quote that parses, found one that does not: /,
    );
    expect(error.cause).toBeInstanceOf(ParseError);
  });
});
