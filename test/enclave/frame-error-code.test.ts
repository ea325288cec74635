/**
 * An error frame carries only the codes docs/errors.md lists for the enclave's frames (the SDK's
 * FRAME_ERROR_KINDS): an engine error of any other code goes out as INFERENCE_FAILED, while the
 * request's audit record keeps the code the error carried.
 */
import { describe, expect, it } from "vitest";
import { FRAME_ERROR_KINDS } from "../../client/sdk.ts";
import type { GenerationEvent } from "../../enclave/engine.ts";
import { frameErrorCode } from "../../enclave/service.ts";
import { openResponseFrames, type ResponseEvent, sealRequest } from "../../sealed/index.ts";
import { bootWith, ScriptedEngine } from "./helpers.ts";

/** A scripted engine whose renderPrompt or generate throws an error carrying `code`. */
class FailingEngine extends ScriptedEngine {
  constructor(
    private readonly where: "render" | "generate",
    private readonly code: string,
  ) {
    super(() => []);
  }
  override renderPrompt(request: unknown) {
    if (this.where === "render") throw Object.assign(new Error("odd failure"), { code: this.code });
    return super.renderPrompt(request);
  }
  override async *generate(): AsyncGenerator<GenerationEvent, void, undefined> {
    yield { type: "text", text: "partial " };
    throw Object.assign(new Error("odd failure"), { code: this.code });
  }
}

/** One sealed completion through an enclave on `engine`: the last event the client opens, and the audit record. */
async function answerOf(engine: ScriptedEngine) {
  const enclave = await bootWith(engine);
  try {
    const { envelope, context } = await sealRequest({
      enclavePublicKey: enclave.publicKeys.sealing,
      kind: "complete",
      body: { prompt: "hello" },
    });
    const answer = await enclave.handleSealed(envelope, "host-tenant", new AbortController().signal);
    const events: ResponseEvent[] = [];
    const failure = await (async () => {
      for await (const event of openResponseFrames(context, answer.frames)) events.push(event);
    })().catch((error: unknown) => error);
    const record = JSON.parse(enclave.collectAudit(0).lines.at(-1) as string).record;
    return { last: events.at(-1) ?? failure, record };
  } finally {
    await enclave.close();
  }
}

describe("enclave error frame codes", () => {
  it("sends each code of the SDK's table of frame error kinds as itself, and no other", () => {
    for (const code of Object.keys(FRAME_ERROR_KINDS)) expect(frameErrorCode(code)).toBe(code);
    for (const code of ["ERR_ODD_CODE", "ENOMEM", "ENGINE_ABORTED", "toString", "__proto__"]) {
      expect(frameErrorCode(code)).toBe("INFERENCE_FAILED");
    }
  });

  for (const where of ["render", "generate"] as const) {
    it(`sends an undocumented code thrown in ${where} as INFERENCE_FAILED; the audit record keeps it`, async () => {
      const { last, record } = await answerOf(new FailingEngine(where, "ERR_ODD_CODE"));
      expect(last).toMatchObject({ code: "INFERENCE_FAILED" });
      expect(record).toMatchObject({ decision: "allow", error: "ERR_ODD_CODE" });
    });

    it(`sends a documented code thrown in ${where} as it is`, async () => {
      const { last, record } = await answerOf(new FailingEngine(where, "PROMPT_TOO_LONG"));
      expect(last).toMatchObject({ code: "PROMPT_TOO_LONG" });
      expect(record).toMatchObject({ decision: "allow", error: "PROMPT_TOO_LONG" });
    });
  }
});
