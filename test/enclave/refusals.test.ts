/**
 * Refusals of the enclave's request pipeline, over a scripted engine: the request policy's first
 * evaluation on its own (a prompt the PII filter leaves alone), and the audit backlog limit.
 */

import { describe, expect, it } from "vitest";
import { EnclaveError } from "../../enclave/errors.ts";
import type { AuditEntry } from "../../enclave/pipeline/audit.ts";
import { AUDIT_PAGE_MAX_LINES, type Enclave, MAX_AUDIT_BACKLOG } from "../../enclave/service.ts";
import { openResponseFrames, type ResponseEvent, sealRequest } from "../../sealed/index.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { bootWith, ScriptedEngine, usage } from "./helpers.ts";

const done = { type: "done", stopReason: "eog", usage: { ...usage, completionTokens: 1 } } as const;

/** A scripted engine (it records each generation it was asked for: `requests`). */
const countingEngine = () => new ScriptedEngine(() => [{ type: "text", text: "a" }, done]);

async function ask(enclave: Enclave, kind: "chat" | "complete", body: unknown): Promise<ResponseEvent[]> {
  const { envelope, context } = await sealRequest({ enclavePublicKey: enclave.publicKeys.sealing, kind, body });
  const answer = await enclave.handleSealed(envelope, "host-tenant", new AbortController().signal);
  const events: ResponseEvent[] = [];
  for await (const event of openResponseFrames(context, answer.frames)) events.push(event);
  return events;
}

const lastRecord = (enclave: Enclave) => JSON.parse(enclave.collectAudit(0).lines.at(-1) as string).record;

describe("enclave: the request policy's first evaluation", () => {
  it("blocks a prompt with no PII that matches a block rule, before PII filtering and the engine", async () => {
    const engine = countingEngine();
    const enclave = await bootWith(engine, 0, {
      requestPolicy: {
        rules: [
          {
            id: "forbidden-topic",
            kind: "pattern",
            action: "block",
            pattern: "forbidden topic",
            caseInsensitive: true,
          },
        ],
      },
    });
    try {
      const allowed = await ask(enclave, "complete", { prompt: "tell me about the weather" });
      expect(allowed.at(-1)).toMatchObject({ type: "final" });
      expect(engine.requests.length).toBe(1);
      for (const [kind, body] of [
        ["chat", { messages: [{ role: "user", content: "tell me about the Forbidden Topic please" }] }],
        ["complete", { prompt: "tell me about the forbidden topic" }],
      ] as const) {
        const events = await ask(enclave, kind, body);
        expect(events, kind).toEqual([expect.objectContaining({ type: "error", code: "POLICY_BLOCKED" })]);
        expect((events[0] as { detail: string | null }).detail).toContain('rule "forbidden-topic"');
        expect(lastRecord(enclave), kind).toMatchObject({
          decision: "block",
          blockedBy: "policy",
          ruleId: "forbidden-topic",
          piiFindings: [],
          error: null,
        });
      }
      expect(engine.requests.length).toBe(1);
    } finally {
      await enclave.close();
    }
  });
});

describe("enclave: audit records the host does not collect", () => {
  it(`answers with ${MAX_AUDIT_BACKLOG - 1} records pending, refuses the next request with ${MAX_AUDIT_BACKLOG} pending before opening it (503 AUDIT_BACKLOG_FULL)`, async () => {
    const engine = countingEngine();
    const enclave = await bootWith(engine);
    try {
      // MAX_AUDIT_BACKLOG is a constant (no test knob): the backlog is filled through the enclave's
      // own record writer, as 10,000 sealed requests take 8-11 s here. Only the last two go through
      // handleSealed.
      const writer = enclave as unknown as { writeAudit(entry: AuditEntry): boolean };
      const entry: AuditEntry = {
        requestId: "filler",
        tenant: "host-tenant",
        decision: "allow",
        blockedBy: null,
        ruleId: null,
        piiFindings: [],
        error: "REQUEST_INVALID",
        prompt: null,
        response: null,
        usage: null,
      };
      for (let i = 0; i < MAX_AUDIT_BACKLOG - 2; i++) {
        expect(writer.writeAudit({ ...entry, requestId: `filler-${i}` })).toBe(true);
      }
      expect(enclave.auditPending).toBe(MAX_AUDIT_BACKLOG - 2);
      expect((await ask(enclave, "complete", { prompt: "one more" })).at(-1)).toMatchObject({ type: "final" });
      expect(enclave.auditPending).toBe(MAX_AUDIT_BACKLOG - 1);
      // One fewer than the limit pending: accepted, answered and recorded (the limit is reached).
      expect((await ask(enclave, "complete", { prompt: "the last" })).at(-1)).toMatchObject({ type: "final" });
      expect(enclave.auditPending).toBe(MAX_AUDIT_BACKLOG);
      expect(engine.requests.length).toBe(2);

      // At the limit: refused as overload, before it is opened (no record, no engine, id unused).
      const { envelope, context } = await sealRequest({
        enclavePublicKey: enclave.publicKeys.sealing,
        kind: "complete",
        body: { prompt: "refused" },
      });
      const refused = await rejectionOf(
        enclave.handleSealed(envelope, null, new AbortController().signal),
        EnclaveError,
      );
      expect(refused).toMatchObject({ code: "AUDIT_BACKLOG_FULL", status: 503 });
      expect(enclave.auditPending).toBe(MAX_AUDIT_BACKLOG);
      expect(engine.requests.length).toBe(2);

      // The host collects the backlog a page at a time, each request acknowledging the page before:
      // every record once, in order, and never more than a page in one answer.
      const seqs: number[] = [];
      let from = 0;
      for (let batch = enclave.collectAudit(from); batch.lines.length > 0; batch = enclave.collectAudit(from)) {
        expect(batch).toMatchObject({ from, next: from + batch.lines.length });
        expect(batch.lines.length).toBe(Math.min(AUDIT_PAGE_MAX_LINES, MAX_AUDIT_BACKLOG - from));
        seqs.push(...batch.lines.map((line) => (JSON.parse(line) as { record: { seq: number } }).record.seq));
        from = batch.next;
      }
      expect(seqs).toEqual(Array.from({ length: MAX_AUDIT_BACKLOG }, (_, i) => i));
      expect(enclave.auditPending).toBe(0);

      // Once the host has collected (acknowledged) the records, the same envelope is answered.
      const answer = await enclave.handleSealed(envelope, null, new AbortController().signal);
      const events: ResponseEvent[] = [];
      for await (const event of openResponseFrames(context, answer.frames)) events.push(event);
      expect(events.at(-1)).toMatchObject({ type: "final" });
      expect(enclave.auditPending).toBe(1);
    } finally {
      await enclave.close();
    }
  });
});
