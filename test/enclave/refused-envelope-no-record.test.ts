/**
 * SECURITY.md, "Guarantees", **Audit**: the enclave writes a record for every request it opens, and
 * "an envelope refused before that has none", each way it is refused named there. Each refusal of
 * handleSealed's own is checked here by its code and by the enclave's audit count, which an opened
 * request moves by one; a full audit backlog is test/enclave/refusals.test.ts's, a drain's and a
 * body too large the server's (refused before handleSealed).
 */

import { readFileSync } from "node:fs";
import { join } from "node:path";
import nacl from "tweetnacl";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EnclaveError } from "../../enclave/errors.ts";
import type { Enclave } from "../../enclave/service.ts";
import { sealRequest } from "../../sealed/index.ts";
import { REPO_ROOT } from "../helpers/cli.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { bootWith, ScriptedEngine, usage } from "./helpers.ts";

const done = { type: "done", stopReason: "eog", usage: { ...usage, completionTokens: 1 } } as const;

let enclave: Enclave;
beforeAll(async () => {
  enclave = await bootWith(new ScriptedEngine(() => [{ type: "text", text: "a" }, done]));
});
afterAll(async () => {
  await enclave.close();
});

/** Records the enclave has written this boot (collected or not). */
const written = (): number => enclave.collectAudit(0).next;

async function seal(options: { to?: Uint8Array; now?: number } = {}): Promise<Uint8Array> {
  const { envelope } = await sealRequest({
    enclavePublicKey: options.to ?? enclave.publicKeys.sealing,
    kind: "complete",
    body: { prompt: "hi", maxTokens: 1 },
    ...(options.now === undefined ? {} : { now: options.now }),
  });
  return envelope;
}

async function answered(envelope: Uint8Array): Promise<void> {
  const answer = await enclave.handleSealed(envelope, "host-tenant", new AbortController().signal);
  for await (const _ of answer.frames) {
    // drain
  }
}

async function refusedWithoutRecord(envelope: Uint8Array, code: string, tenant = "host-tenant"): Promise<void> {
  const before = written();
  const error = await rejectionOf(enclave.handleSealed(envelope, tenant, new AbortController().signal), EnclaveError);
  expect(error).toMatchObject({ code });
  expect(written()).toBe(before);
}

describe("enclave audit: an envelope refused before it is opened has no record", () => {
  it("an opened request has one (the count the refusals below leave unchanged)", async () => {
    const before = written();
    await answered(await seal());
    expect(written()).toBe(before + 1);
  });

  it("SECURITY.md names each refusal below, and those refused before handleSealed", () => {
    const text = readFileSync(join(REPO_ROOT, "SECURITY.md"), "utf8").replace(/\s+/g, " ");
    expect(text).toContain(
      "for every request it opens (an envelope refused before that has none: one too large, not of the envelope's " +
        "form or version, another enclave's, not decrypting, its routing header altered, its plaintext malformed, " +
        "stale or replayed; one the host labels with a tenant header of the wrong form; one sent while the enclave " +
        "drains, after auditing failed, or while the replay cache or the audit backlog is full)",
    );
  });

  it("an envelope cut short (ENVELOPE_MALFORMED)", async () => {
    await refusedWithoutRecord((await seal()).subarray(0, 40), "ENVELOPE_MALFORMED");
  });

  it("an envelope the host labels with a tenant header of the wrong form (TENANT_HEADER_INVALID)", async () => {
    await refusedWithoutRecord(await seal(), "TENANT_HEADER_INVALID", "host tenant");
  });

  it("another enclave's envelope (WRONG_ENCLAVE_KEY)", async () => {
    await refusedWithoutRecord(await seal({ to: nacl.box.keyPair().publicKey }), "WRONG_ENCLAVE_KEY");
  });

  it("an envelope whose ciphertext was altered (DECRYPTION_FAILED)", async () => {
    const envelope = await seal();
    envelope[envelope.length - 1] = (envelope[envelope.length - 1] as number) ^ 1;
    await refusedWithoutRecord(envelope, "DECRYPTION_FAILED");
  });

  it("an envelope whose routing header was altered, kind complete → chat (HEADER_MISMATCH)", async () => {
    const envelope = await seal();
    envelope[1] = 0x01; // sealed/envelope.ts: the kind byte, 0x02 complete → 0x01 chat
    await refusedWithoutRecord(envelope, "HEADER_MISMATCH");
  });

  it("a stale envelope, sealed 125 s ago (REQUEST_STALE)", async () => {
    await refusedWithoutRecord(await seal({ now: Date.now() - 125_000 }), "REQUEST_STALE");
  });

  it("a replayed envelope (REQUEST_REPLAYED): its first delivery has the only record", async () => {
    const envelope = await seal();
    const before = written();
    await answered(envelope);
    expect(written()).toBe(before + 1);
    await refusedWithoutRecord(envelope, "REQUEST_REPLAYED");
  });
});
