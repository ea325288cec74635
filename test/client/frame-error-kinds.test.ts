/**
 * Every code an enclave's sealed error frame can carry has a kind in the SDK's table: a code added
 * to docs/errors.md's enclave table as a frame code fails here until it is classified. A frame's
 * error says its code once (the CLI prints `cloister: CODE: message`).
 */
import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { ClientError } from "../../client/errors.ts";
import { FRAME_ERROR_KINDS } from "../../client/sdk.ts";
import { closeServers, connectTo } from "./helpers.ts";

afterEach(closeServers);

/** The "Enclave" table rows whose `where` is `frame` or that say they arrive in an error frame: code and text. */
function documentedFrameRows(): { code: string; text: string }[] {
  const docs = readFileSync(new URL("../../docs/errors.md", import.meta.url), "utf8");
  const section = docs.split(/^## /m).find((part) => part.startsWith("Enclave ("));
  if (section === undefined) throw new Error("docs/errors.md: no Enclave section");
  const rows: { code: string; text: string }[] = [];
  for (const line of section.split("\n")) {
    const cells = line.split("|").map((cell) => cell.trim());
    if (cells.length < 4 || !cells[1]?.startsWith("`")) continue;
    if (cells[2] !== "frame" && !/error frame/.test(cells[3] ?? "")) continue;
    for (const m of (cells[1] ?? "").matchAll(/`([A-Z0-9_]+)`/g))
      rows.push({ code: m[1] as string, text: cells[3] ?? "" });
  }
  return rows;
}

function documentedFrameCodes(): string[] {
  return documentedFrameRows().map((row) => row.code);
}

describe("FRAME_ERROR_KINDS", () => {
  it("classifies every enclave frame error code docs/errors.md lists", () => {
    const codes = documentedFrameCodes();
    // The table's frame rows and the rows that name their error frame (ENGINE_BUSY, AUDIT_FAILED, CHAT_WRAPPER_FAILED).
    expect(codes).toEqual(expect.arrayContaining(["INFERENCE_FAILED", "ENGINE_ENDED", "ENGINE_BUSY", "AUDIT_FAILED"]));
    expect(codes.filter((code) => !Object.hasOwn(FRAME_ERROR_KINDS, code))).toEqual([]);
  });

  it("classifies only codes docs/errors.md lists as arriving in a frame (the enclave sends no other: frameErrorCode)", () => {
    // The enclave sends any other code as INFERENCE_FAILED (errors.md says so by this list), so a
    // code it does send must be on it: a row of `where` HTTP only would say that code never comes in a frame.
    const codes = new Set(documentedFrameCodes());
    expect(Object.keys(FRAME_ERROR_KINDS).filter((code) => !codes.has(code))).toEqual([]);
  });

  it("keeps refusals of the request as policy, the enclave's failures as transport", () => {
    for (const code of ["POLICY_BLOCKED", "PII_BLOCKED", "PROMPT_TOO_LONG", "CHAT_TEMPLATE_REFUSED"]) {
      expect(FRAME_ERROR_KINDS[code]).toBe("policy");
    }
    for (const code of [
      "ENGINE_BUSY",
      "ENGINE_CLOSED",
      "ENGINE_ENDED",
      "INFERENCE_FAILED",
      "GENERATION_FAILED",
      "AUDIT_FAILED",
    ]) {
      expect(FRAME_ERROR_KINDS[code]).toBe("transport");
    }
  });

  it("the docs and the kind agree on retrying: a transport code's row never says a retry does not help", () => {
    // AUDIT_FAILED lasts until its enclave restarts, yet is transport: a pool host answers a sealed
    // request to that member WRONG_ENCLAVE_KEY, and the SDK re-attests to another and resends. Its
    // row must say so, not that retrying does not help (the proxy leaves a transport error to retry).
    const transportRows = documentedFrameRows().filter((row) => FRAME_ERROR_KINDS[row.code] === "transport");
    expect(transportRows.map((row) => row.code)).toContain("AUDIT_FAILED");
    for (const row of transportRows) {
      expect(row.text, row.code).not.toMatch(/retrying does not help|not retried/);
      if (/until the enclave (is )?restart/.test(row.text)) expect(row.text, row.code).toContain("`WRONG_ENCLAVE_KEY`");
    }
  });
});

describe("an enclave's error frame", () => {
  it("says its code once: in the error's code, not again in its message", async () => {
    const { session } = await connectTo();
    // The dev manifest's rule no-private-keys blocks this prompt in the enclave (POLICY_BLOCKED).
    const error = await (async () => {
      for await (const _ of session.chat([{ role: "user", content: "-----BEGIN PRIVATE KEY-----" }])) {
        // nothing is answered
      }
    })().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ClientError);
    expect(error).toMatchObject({ kind: "policy", code: "POLICY_BLOCKED", origin: "enclave" });
    const { message } = error as ClientError;
    expect(message).toBe(
      'enclave refused or failed the request (rule "no-private-keys" (pattern, block): the prompt matches the rule\'s pattern)',
    );
    expect(message).not.toContain("POLICY_BLOCKED");
  });
});
