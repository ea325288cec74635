/**
 * Every code an enclave's sealed error frame can carry has a kind in the SDK's table: a code added
 * to docs/errors.md's enclave table as a frame code fails here until it is classified.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { FRAME_ERROR_KINDS } from "../../client/sdk.ts";

/** Codes of the "Enclave" table rows whose `where` is `frame` or that say they arrive in an error frame. */
function documentedFrameCodes(): string[] {
  const docs = readFileSync(new URL("../../docs/errors.md", import.meta.url), "utf8");
  const section = docs.split(/^## /m).find((part) => part.startsWith("Enclave ("));
  if (section === undefined) throw new Error("docs/errors.md: no Enclave section");
  const codes: string[] = [];
  for (const line of section.split("\n")) {
    const cells = line.split("|").map((cell) => cell.trim());
    if (cells.length < 4 || !cells[1]?.startsWith("`")) continue;
    if (cells[2] !== "frame" && !/error frame/.test(cells[3] ?? "")) continue;
    codes.push(...[...(cells[1] ?? "").matchAll(/`([A-Z0-9_]+)`/g)].map((m) => m[1] as string));
  }
  return codes;
}

describe("FRAME_ERROR_KINDS", () => {
  it("classifies every enclave frame error code docs/errors.md lists", () => {
    const codes = documentedFrameCodes();
    // The table's frame rows and the rows that name their error frame (ENGINE_BUSY, AUDIT_FAILED, CHAT_WRAPPER_FAILED).
    expect(codes).toEqual(expect.arrayContaining(["INFERENCE_FAILED", "ENGINE_ENDED", "ENGINE_BUSY", "AUDIT_FAILED"]));
    expect(codes.filter((code) => !Object.hasOwn(FRAME_ERROR_KINDS, code))).toEqual([]);
  });

  it("keeps refusals of the request as policy, the enclave's failures as transport", () => {
    for (const code of ["POLICY_BLOCKED", "PII_BLOCKED", "PROMPT_TOO_LONG", "CHAT_TEMPLATE_REFUSED"]) {
      expect(FRAME_ERROR_KINDS[code]).toBe("policy");
    }
    for (const code of ["ENGINE_BUSY", "ENGINE_CLOSED", "ENGINE_ENDED", "INFERENCE_FAILED", "GENERATION_FAILED"]) {
      expect(FRAME_ERROR_KINDS[code]).toBe("transport");
    }
  });
});
