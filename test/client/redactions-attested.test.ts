/**
 * The SDK holds the final frame's `redacted` to the verified manifest: an enclave that says it
 * redacted a PII kind its attested manifest does not redact (another kind, or any when the mode is
 * not "redact") is not running what it attested, and its answer is refused
 * (REDACTIONS_NOT_ATTESTED, integrity). The enclave here is made to say so by rewriting, inside it,
 * the final frame's JSON before it is sealed: the host cannot change a sealed frame.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { checkRedactions } from "../../client/sdk.ts";
import type { ManifestOverrides } from "../../manifests/dev.ts";
import { madeUpEnclave } from "../helpers/verified-enclave.ts";
import { closeServers, connectTo, enclaveSays } from "./helpers.ts";

afterEach(async () => {
  vi.restoreAllMocks();
  await closeServers();
});

async function answerOf(overrides: ManifestOverrides, redacted: unknown) {
  // One enclave, and one rewriting of its frame, at a time.
  vi.restoreAllMocks();
  await closeServers();
  const { session } = await connectTo({ overrides });
  enclaveSays(redacted);
  return session.complete("write about the sea").then(
    (completion) => ({ redacted: completion.redacted }),
    (error: { kind: string; code: string; message: string }) => ({
      error: { kind: error.kind, code: error.code, message: error.message },
    }),
  );
}

/** What the error says of the answer a streaming caller has shown before the final frame. */
const UNTRUSTED =
  "; any text of this answer already shown came from an enclave whose PII redaction did not match its attested manifest: do not rely on it";

const PHONES_ONLY: ManifestOverrides = {
  requestPolicy: { pii: { mode: "redact", entities: ["phone"], reason: null } },
};

describe("the final frame's redacted, held to the attested manifest", () => {
  it("takes kinds the manifest redacts, null, and (an older enclave) not said", async () => {
    expect(await answerOf(PHONES_ONLY, { phone: 2 })).toEqual({ redacted: { phone: 2 } });
    expect(await answerOf(PHONES_ONLY, null)).toEqual({ redacted: null });
    expect(
      await answerOf({ requestPolicy: { pii: { mode: "block", entities: ["email"], reason: null } } }, undefined),
    ).toEqual({
      redacted: undefined,
    });
  });

  it("refuses a kind the manifest does not name, naming the kind", async () => {
    expect(await answerOf(PHONES_ONLY, { phone: 1, email: 1 })).toEqual({
      error: {
        kind: "integrity",
        code: "REDACTIONS_NOT_ATTESTED",
        message: `response redacted: expected PII kinds among the attested manifest's entities, found email${UNTRUSTED}`,
      },
    });
  });

  it("refuses any kind when the manifest's PII mode is not redact", async () => {
    for (const pii of [
      { mode: "block", entities: ["email"], reason: null },
      { mode: "off", entities: [], reason: "test: no PII filter" },
    ] satisfies NonNullable<ManifestOverrides["requestPolicy"]>["pii"][]) {
      expect(await answerOf({ requestPolicy: { pii } }, { email: 1 }), pii.mode).toEqual({
        error: {
          kind: "integrity",
          code: "REDACTIONS_NOT_ATTESTED",
          message: `response redacted: expected null, as the attested manifest's PII mode is not "redact", found email${UNTRUSTED}`,
        },
      });
    }
  });

  it("refuses any kind when the verified manifest shows no PII settings, saying so", () => {
    // A ManifestCheck other than the client policy's may return no schema-checked manifest.
    for (const manifest of [null, { service: { name: "svc" } }]) {
      expect(() => checkRedactions({ email: 1 }, madeUpEnclave("sev-snp", manifest))).toThrow(
        expect.objectContaining({
          kind: "integrity",
          code: "REDACTIONS_NOT_ATTESTED",
          message: `response redacted: expected null, as the verified manifest shows no PII settings, found email${UNTRUSTED}`,
        }),
      );
    }
  });
});
