/**
 * SECURITY.md, "Auditing fails closed": a request still open when another request's record cannot
 * be written "sends no more text and ends in an AUDIT_FAILED error frame, not a final frame". The
 * case audit-failure.test.ts leaves open: an answer whose text all went out before the failure and
 * whose engine ends after it. No text is left to hold back, so only the check at the engine's end
 * keeps the receipt (a final frame) from going out after auditing failed.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import type { AuditWriter } from "../../enclave/pipeline/audit.ts";
import { AuditRecordInvalidError } from "../../enclave/pipeline/errors.ts";
import type { Enclave } from "../../enclave/service.ts";
import { openResponseFrames, type ResponseEvent, sealRequest } from "../../sealed/index.ts";
import { bootWith, ScriptedEngine, usage } from "./helpers.ts";

const text = (t: string) => ({ type: "text", text: t }) as const;
const done = { type: "done", stopReason: "eog", usage: { ...usage, completionTokens: 2 } } as const;

afterEach(() => {
  vi.restoreAllMocks();
});

async function open(enclave: Enclave) {
  const { envelope, context } = await sealRequest({
    enclavePublicKey: enclave.publicKeys.sealing,
    kind: "complete",
    body: { prompt: "a prompt" },
  });
  const answer = await enclave.handleSealed(envelope, "host-tenant", new AbortController().signal);
  return { context, iterator: answer.frames[Symbol.asyncIterator]() };
}

async function rest(iterator: AsyncIterator<Uint8Array>): Promise<Uint8Array[]> {
  const frames: Uint8Array[] = [];
  for (let r = await iterator.next(); r.done !== true; r = await iterator.next()) frames.push(r.value);
  return frames;
}

async function events(context: Awaited<ReturnType<typeof open>>["context"], frames: Uint8Array[]) {
  const out: ResponseEvent[] = [];
  for await (const event of openResponseFrames(
    context,
    (async function* () {
      yield* frames;
    })(),
  ))
    out.push(event);
  return out;
}

/**
 * An enclave whose audit writer fails from now on, with the first answer's engine giving `first`,
 * then waiting for `release` before it ends; every other answer is "B".
 */
async function heldAnswer(first: string) {
  let release = () => {};
  const engineEnds = new Promise<void>((resolve) => {
    release = resolve;
  });
  let n = 0;
  const enclave = await bootWith(
    new ScriptedEngine(() => (n++ === 0 ? [text(first), { until: engineEnds }, done] : [text("B"), done])),
  );
  vi.spyOn(process.stderr, "write").mockImplementation(() => true);
  const writer = (enclave as unknown as { audit: AuditWriter }).audit;
  const record = vi.spyOn(writer, "record").mockImplementation(() => {
    throw new AuditRecordInvalidError("time", "a valid Date from the clock", new Date(Number.NaN));
  });
  return { enclave, record, release };
}

describe("enclave: auditing fails while an answer's text is all out and its engine has not ended", () => {
  it("the answer ends in AUDIT_FAILED, with no final frame and no receipt", async () => {
    const { enclave, record, release } = await heldAnswer("whole answer");

    const held = await open(enclave);
    const first = await held.iterator.next(); // its only text: nothing is left to hold back
    expect(first.done).toBe(false);
    // Another answer ends meanwhile: its final frame goes out, then its record cannot be written.
    const other = await open(enclave);
    expect((await events(other.context, await rest(other.iterator))).at(-1)).toMatchObject({ type: "final" });
    expect(enclave.auditFailed).toBe(true);

    release(); // the held answer's engine ends only now, after auditing failed
    const all = await events(held.context, [first.value as Uint8Array, ...(await rest(held.iterator))]);
    expect(all.flatMap((e) => (e.type === "data" ? [e.text] : []))).toEqual(["whole answer"]);
    expect(all.some((e) => e.type === "final")).toBe(false);
    expect(all.at(-1)).toMatchObject({ type: "error", code: "AUDIT_FAILED" });
    // Its own record was tried once (and failed): an AUDIT_FAILED frame without an opening.
    expect(record).toHaveBeenCalledTimes(2);
  });

  it("an answer whose text ended on a held half of a surrogate pair sends nothing more either", async () => {
    // The lone high surrogate is held back for the next text; none comes before the engine ends,
    // by which time auditing has failed: it must not go out (as U+FFFD) after the failure.
    const { enclave, release } = await heldAnswer("ends on \uD83D");
    const held = await open(enclave);
    const first = await held.iterator.next();
    expect(first.done).toBe(false);
    const other = await open(enclave);
    await rest(other.iterator);
    expect(enclave.auditFailed).toBe(true);

    release();
    const all = await events(held.context, [first.value as Uint8Array, ...(await rest(held.iterator))]);
    expect(all.flatMap((e) => (e.type === "data" ? [e.text] : []))).toEqual(["ends on "]);
    expect(all.at(-1)).toMatchObject({ type: "error", code: "AUDIT_FAILED" });
  });
});
