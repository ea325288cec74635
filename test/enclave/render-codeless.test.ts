/**
 * An error without a code from the engine's renderPrompt, before the policy or after PII redaction
 * changed the prompt: what renderPrompt throws for the request's fault carries a code (ENGINE_REQUEST,
 * CHAT_TEMPLATE_REFUSED; PROMPT_TOO_LONG is generate's), so one without is the enclave's own failure
 * (node-llama-cpp's tokenizer or a chat wrapper failing): INFERENCE_FAILED ("retry may help"), in the frame and the
 * audit record, never ENGINE_REQUEST, which the client reads as "the same request is refused again".
 */
import { describe, expect, it } from "vitest";
import { openResponseFrames, type ResponseEvent, sealRequest } from "../../sealed/index.ts";
import { bootWith, ScriptedEngine } from "./helpers.ts";

/** A scripted engine whose renderPrompt throws an Error without a code on its `failing`-th call. */
class CodelessRenderEngine extends ScriptedEngine {
  renders = 0;
  constructor(private readonly failing: number) {
    super(() => []);
  }
  override renderPrompt(request: unknown) {
    this.renders++;
    if (this.renders === this.failing) throw new TypeError("a native tokenizer failure");
    return super.renderPrompt(request);
  }
}

describe("enclave: renderPrompt failing without a code", () => {
  for (const [failing, stage] of [
    [1, "before the policy"],
    [2, "after PII redaction"],
  ] as const) {
    it(`${stage}: answers INFERENCE_FAILED, the enclave's failure, and records it`, async () => {
      const engine = new CodelessRenderEngine(failing);
      const enclave = await bootWith(engine, 0, {
        requestPolicy: { pii: { mode: "redact", entities: ["ip_address"], reason: null } },
      });
      try {
        const { envelope, context } = await sealRequest({
          enclavePublicKey: enclave.publicKeys.sealing,
          kind: "complete",
          body: { prompt: "reach ::1 now" },
        });
        const answer = await enclave.handleSealed(envelope, "host-tenant", new AbortController().signal);
        const events: ResponseEvent[] = [];
        for await (const event of openResponseFrames(context, answer.frames)) events.push(event);
        expect(engine.renders).toBe(failing); // the redaction made the second rendering
        expect(events).toEqual([expect.objectContaining({ type: "error", code: "INFERENCE_FAILED" })]);
        const record = JSON.parse(enclave.collectAudit(0).lines.at(-1) as string).record;
        expect(record).toMatchObject({ decision: "allow", error: "INFERENCE_FAILED" });
      } finally {
        await enclave.close();
      }
    });
  }
});
