/**
 * SECURITY.md, "What the host can see" (the audit records): a record's API key id (`tenant`) is the
 * label the host sends with the envelope (`x-cloister-tenant`), not anything the client sealed or
 * the enclave checked. The enclave signs whatever well-formed label the host gives ("unknown" for
 * none), so a signed record shows which key the host said a request came under, not which key sent
 * it; the sealed `tenant` (the KV-cache scope) never reaches the record.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Enclave } from "../../enclave/service.ts";
import { sealRequest } from "../../sealed/index.ts";
import { bootWith, ScriptedEngine, usage } from "./helpers.ts";

const done = { type: "done", stopReason: "eog", usage: { ...usage, completionTokens: 1 } } as const;
const SEALED_SCOPE = "ab".repeat(16);

let enclave: Enclave;
beforeAll(async () => {
  enclave = await bootWith(new ScriptedEngine(() => [{ type: "text", text: "a" }, done]));
});
afterAll(async () => {
  await enclave.close();
});

/** Sends one request sealed by the same client, labelled `label` by the host; returns its record's tenant. */
async function recordedTenant(label: string | null): Promise<unknown> {
  const from = enclave.collectAudit(0).next;
  const { envelope } = await sealRequest({
    enclavePublicKey: enclave.publicKeys.sealing,
    kind: "complete",
    body: { prompt: "hi", maxTokens: 1, tenant: SEALED_SCOPE },
  });
  const answer = await enclave.handleSealed(envelope, label, new AbortController().signal);
  for await (const _ of answer.frames) {
    // drain: the record is written once the answer ends
  }
  const page = enclave.collectAudit(from);
  expect(page.lines).toHaveLength(1);
  return (JSON.parse(page.lines[0] as string) as { record: { tenant?: unknown } }).record.tenant;
}

describe("enclave audit: a record's API key id is the host's label", () => {
  it("signs whichever key id the host names for the same client's requests, and 'unknown' for none", async () => {
    expect(await recordedTenant("alice")).toBe("alice");
    expect(await recordedTenant("mallory")).toBe("mallory");
    expect(await recordedTenant(null)).toBe("unknown");
  });

  it("never records the client's sealed tenant (its cache scope) in place of the host's label", async () => {
    const tenant = await recordedTenant("bob");
    expect(tenant).not.toBe(SEALED_SCOPE);
    expect(JSON.stringify(enclave.collectAudit(0).lines)).not.toContain(SEALED_SCOPE);
  });
});
