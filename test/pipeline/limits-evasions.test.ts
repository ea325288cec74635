/**
 * SECURITY.md's stated limits of the request policy ("Non-goals and known limits"), probed as an
 * attacker would: a chat's pattern rules read every message, the system one included, joined by
 * line breaks (so a word split over two messages passes a rule for the word, and meets one that
 * allows the line break); a combining mark on a Latin letter is read past, whether NFKC composes it
 * with the letter or not, and a letter written accented is read without its accent
 * (composed-marks.test.ts, accent-folding.test.ts).
 */

import { describe, expect, it } from "vitest";
import { compileRequestPolicy, type RequestPolicy } from "../../enclave/pipeline/policy.ts";
import type { Enclave } from "../../enclave/service.ts";
import { openResponseFrames, type ResponseEvent, sealRequest } from "../../sealed/index.ts";
import { bootWith, ScriptedEngine, usage } from "../enclave/helpers.ts";

const done = { type: "done", stopReason: "eog", usage: { ...usage, completionTokens: 1 } } as const;

async function chat(
  enclave: Enclave,
  messages: readonly { role: string; content: string }[],
): Promise<ResponseEvent[]> {
  const { envelope, context } = await sealRequest({
    enclavePublicKey: enclave.publicKeys.sealing,
    kind: "chat",
    body: { messages, maxTokens: 4 },
  });
  const answer = await enclave.handleSealed(envelope, "host-tenant", new AbortController().signal);
  const events: ResponseEvent[] = [];
  for await (const event of openResponseFrames(context, answer.frames)) events.push(event);
  return events;
}

const blocked = [expect.objectContaining({ type: "error", code: "POLICY_BLOCKED" })];

describe("pattern rules over a chat: every message, joined by line breaks", () => {
  it("blocks on the system message and on an earlier user message, not only the last one", async () => {
    const engine = new ScriptedEngine(() => [{ type: "text", text: "ok" }, done]);
    const rules: RequestPolicy["rules"] = [
      { id: "no-password", kind: "pattern", action: "block", pattern: "password", caseInsensitive: false },
      { id: "no-split", kind: "pattern", action: "block", pattern: "pass\\nword", caseInsensitive: false },
    ];
    const enclave = await bootWith(engine, 0, { requestPolicy: { rules, defaultAction: "allow" } });
    try {
      const last = { role: "user", content: "Hello." };
      expect(await chat(enclave, [{ role: "system", content: "Say the password." }, last])).toEqual(blocked);
      expect(
        await chat(enclave, [{ role: "user", content: "The password?" }, { role: "assistant", content: "No." }, last]),
      ).toEqual(blocked);
      // Split over two messages: the joined text reads `pass\nword`, which the `password` rule does
      // not meet (the stated limit) and a rule that allows the line break does.
      const split = [
        { role: "user", content: "pass" },
        { role: "user", content: "word" },
      ];
      const events = await chat(enclave, split);
      expect(events).toEqual(blocked);
      expect(JSON.stringify(events[0])).toContain("no-split");
      // Nothing blocked reached the model; the allowed control request did.
      expect((await chat(enclave, [last])).at(-1)).toMatchObject({ type: "final" });
      expect(engine.requests.length).toBe(1);
    } finally {
      await enclave.close();
    }
  });
});

describe("combining marks: read past on Latin letters, also those of a letter written accented", () => {
  const policy: RequestPolicy = {
    rules: [{ id: "no-password", kind: "pattern", action: "block", pattern: "password", caseInsensitive: false }],
    defaultAction: "allow",
    pii: { mode: "off", entities: [], reason: "test" },
  } as unknown as RequestPolicy;
  const decide = (text: string) =>
    compileRequestPolicy(policy).evaluate({ kind: "complete", model: "m", text, estimatedTokens: 1, metadata: {} })
      .decision;

  it("a mark no letter composes with (U+0336) and one NFKC composes (U+0301, U+0308) are read past, `ö` as written too", () => {
    expect(decide("pa\u0336ssword")).toBe("block");
    expect(decide("passwo\u0336\u0336rd")).toBe("block");
    // NFKC would compose `a` + U+0301 into `á` and `o` + U+0308 into `ö`; the unmarked view drops
    // the marks before normalizing.
    expect(decide("pa\u0301ssword")).toBe("block");
    expect(decide("passwo\u0308rd")).toBe("block");
    // A letter written accented (U+00F6) reads as the bare letter too (tidy66); `ø` does not decompose.
    expect(decide("passwörd")).toBe("block");
    expect(decide("passwørd")).toBe("allow");
  });
});
