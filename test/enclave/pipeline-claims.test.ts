/**
 * What README ("The enclave applies the attested manifest's `requestPolicy`…") and SECURITY.md
 * ("Audit") say the pipeline does to every request, checked over a scripted engine that records what
 * the model was given: every message is redacted whatever its role, and the audit record commits to
 * the prompt as the client sent it (so `cloister audit find --prompt-file` works on a redacted
 * prompt) and to the answer, holding neither.
 */

import { describe, expect, it } from "vitest";
import type { GenerateRequest } from "../../enclave/engine.ts";
import { auditCommitment } from "../../enclave/pipeline/audit.ts";
import type { Enclave } from "../../enclave/service.ts";
import { openResponseFrames, type ResponseEvent, sealRequest } from "../../sealed/index.ts";
import { bootWith, ScriptedEngine, usage } from "./helpers.ts";

const done = { type: "done", stopReason: "eog", usage: { ...usage, completionTokens: 1 } } as const;
const ANSWER = "noted";

async function ask(enclave: Enclave, body: unknown): Promise<ResponseEvent[]> {
  const { envelope, context } = await sealRequest({ enclavePublicKey: enclave.publicKeys.sealing, kind: "chat", body });
  const answer = await enclave.handleSealed(envelope, "host-tenant", new AbortController().signal);
  const events: ResponseEvent[] = [];
  for await (const event of openResponseFrames(context, answer.frames)) events.push(event);
  return events;
}

describe("enclave pipeline: PII is redacted in every message, the record commits to what was sent", () => {
  it("redacts system, assistant and user messages alike before the model; the record opens to the original", async () => {
    const engine = new ScriptedEngine(() => [{ type: "text", text: ANSWER }, done]);
    const enclave = await bootWith(engine);
    try {
      const messages = [
        { role: "system", content: "The operator is ops@example.com." },
        { role: "user", content: "What is my number?" },
        { role: "assistant", content: "It is 415 555 2671, and your card 4111 1111 1111 1111." },
        { role: "user", content: "And my server 203.0.113.7?" },
      ] as const;
      const events = await ask(enclave, { messages, maxTokens: 4 });
      const final = events.at(-1) as { type: string; redacted: unknown; auditOpening: string | null };
      expect(final).toMatchObject({
        type: "final",
        redacted: { email: 1, phone: 1, credit_card: 1, ip_address: 1 },
      });

      // What the model was given: each message with its entities replaced, whatever its role.
      expect(engine.requests.length).toBe(1);
      const given = (engine.requests[0] as Extract<GenerateRequest, { messages: unknown }>).messages;
      expect(given.map((m) => [m.role, m.content])).toEqual([
        ["system", "The operator is [REDACTED_EMAIL]."],
        ["user", "What is my number?"],
        ["assistant", "It is [REDACTED_PHONE], and your card [REDACTED_CREDIT_CARD]."],
        ["user", "And my server [REDACTED_IP_ADDRESS]?"],
      ]);

      // The record: counts, no value, and commitments to the prompt as sent (the messages' contents
      // joined by line breaks, before redaction) and to the answer, under the opening the client got.
      const line = enclave.collectAudit(0).lines.at(-1) as string;
      for (const secret of ["ops@example.com", "415 555 2671", "4111", "203.0.113.7", ANSWER, "REDACTED"]) {
        expect(line.includes(secret), secret).toBe(false);
      }
      const record = JSON.parse(line).record;
      expect(record).toMatchObject({ decision: "allow", blockedBy: null, error: null });
      expect(record.piiFindings).toEqual(
        expect.arrayContaining([
          { entity: "email", count: 1 },
          { entity: "phone", count: 1 },
          { entity: "credit_card", count: 1 },
          { entity: "ip_address", count: 1 },
        ]),
      );
      expect(final.auditOpening).toMatch(/^[0-9a-f]{64}$/);
      const opening = Buffer.from(final.auditOpening as string, "hex");
      const sent = messages.map((m) => m.content).join("\n");
      expect(record.promptHmac).toBe(auditCommitment(opening, "prompt", sent));
      const redactedText = given.map((m) => m.content).join("\n");
      expect(record.promptHmac).not.toBe(auditCommitment(opening, "prompt", redactedText));
      expect(record.responseHmac).toBe(auditCommitment(opening, "response", ANSWER));
    } finally {
      await enclave.close();
    }
  });

  it("records the rule that admitted what the model saw: the token rule matched only after redaction", async () => {
    // Counts a prompt's characters as its tokens, so a placeholder longer than its entity shows.
    class CharCountingEngine extends ScriptedEngine {
      override renderPrompt(request: unknown) {
        const r = request as GenerateRequest;
        const text = "messages" in r ? r.messages.map((m) => m.content).join("\n") : r.prompt;
        return { tokenCount: text.length, request };
      }
    }
    const engine = new CharCountingEngine(() => [{ type: "text", text: ANSWER }, done]);
    const enclave = await bootWith(engine, 0, {
      requestPolicy: {
        defaultAction: "allow",
        rules: [{ id: "long-prompts", kind: "maxPromptTokens", action: "allow", limit: 100 }],
        pii: { mode: "redact", entities: ["ip_address"], reason: null },
      },
    });
    try {
      // 31 characters as sent (no rule matches: defaultAction); 8 placeholders of 21 after redaction.
      const prompt = Array.from({ length: 8 }, (_, i) => `::${i + 1}`).join(" ");
      const events = await ask(enclave, { messages: [{ role: "user", content: prompt }], maxTokens: 4 });
      expect(events.at(-1)).toMatchObject({ type: "final", redacted: { ip_address: 8 } });
      const record = JSON.parse(enclave.collectAudit(0).lines.at(-1) as string).record;
      expect(record).toMatchObject({ decision: "allow", blockedBy: null, ruleId: "long-prompts" });
    } finally {
      await enclave.close();
    }
  });
});
