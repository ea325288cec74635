/**
 * sealed/request-limits.ts holds what the enclave accepts in a request body, for the client to check
 * before sealing (client/sdk.ts) and the CLI to cap its options with. These cases send each limit,
 * and one step past it, straight to an enclave booted in this process (sealed by hand, as no SDK
 * would send the second): the enclave must accept the first and refuse the second with
 * REQUEST_INVALID, so the shared values and the enclave's schema cannot drift apart unnoticed.
 *
 * Then the same table (and a few more: Infinity, non-integers, message counts and text lengths)
 * goes through the SDK's own local checks (client/sdk.ts): the value at the limit must reach the
 * enclave as a sealed request and be answered; the value one step past it must be refused as a
 * configuration error with no sealed request sent at all.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChatMessage, GenerationOptions, Session } from "../../client/sdk.ts";
import type { Enclave } from "../../enclave/service.ts";
import { openResponseFrames, type ResponseEvent, sealRequest } from "../../sealed/index.ts";
import { CHAT_ROLES, REQUEST_LIMITS } from "../../sealed/request-limits.ts";
import { bootWith, ScriptedEngine, usage } from "../enclave/helpers.ts";
import { closeServers, connectTo } from "./helpers.ts";

let enclave: Enclave;
beforeAll(async () => {
  enclave = await bootWith(
    new ScriptedEngine(() => [
      { type: "text", text: "ok" },
      { type: "done", stopReason: "eog", usage },
    ]),
  );
});
afterAll(() => enclave?.close());

async function outcome(kind: "chat" | "complete", body: Record<string, unknown>): Promise<string> {
  const { envelope, context } = await sealRequest({ enclavePublicKey: enclave.publicKeys.sealing, kind, body });
  const answer = await enclave.handleSealed(envelope, "host-tenant", new AbortController().signal);
  const events: ResponseEvent[] = [];
  for await (const event of openResponseFrames(context, answer.frames)) events.push(event);
  const last = events.at(-1);
  return last?.type === "error" ? last.code : (last?.type ?? "nothing");
}

const L = REQUEST_LIMITS;
const user = (content: string) => ({ role: "user", content });
/** [field, a value at the limit, a value one step past it] */
const cases: [string, Record<string, unknown>, Record<string, unknown>][] = [
  ["maxTokens min", { maxTokens: L.maxTokens.min }, { maxTokens: L.maxTokens.min - 1 }],
  ["maxTokens max", { maxTokens: L.maxTokens.max }, { maxTokens: L.maxTokens.max + 1 }],
  ["temperature min", { temperature: L.temperature.min }, { temperature: L.temperature.min - 0.01 }],
  ["temperature max", { temperature: L.temperature.max }, { temperature: L.temperature.max + 0.01 }],
  ["topP above", { topP: L.topP.above + 0.01 }, { topP: L.topP.above }],
  ["topP max", { topP: L.topP.max }, { topP: L.topP.max + 0.01 }],
  ["seed min", { seed: L.seed.min }, { seed: L.seed.min - 1 }],
  ["seed max", { seed: L.seed.max }, { seed: L.seed.max + 1 }],
  [
    "stop count",
    { stop: Array.from({ length: L.stop.maxCount }, (_, i) => `s${i}`) },
    { stop: Array.from({ length: L.stop.maxCount + 1 }, (_, i) => `s${i}`) },
  ],
  ["stop min chars", { stop: ["x".repeat(L.stop.minChars)] }, { stop: ["x".repeat(L.stop.minChars - 1)] }],
  ["stop max chars", { stop: ["x".repeat(L.stop.maxChars)] }, { stop: ["x".repeat(L.stop.maxChars + 1)] }],
];

describe("the enclave applies exactly sealed/request-limits.ts", () => {
  for (const [name, at, past] of cases) {
    it(`${name}: accepted at the limit, REQUEST_INVALID one step past it`, async () => {
      expect(await outcome("complete", { prompt: "hi", ...at })).toBe("final");
      expect(await outcome("complete", { prompt: "hi", ...past })).toBe("REQUEST_INVALID");
    });
  }

  it("prompt and message content: maxTextChars characters accepted, one more refused", async () => {
    // Past the schema, the dev manifest's request policy blocks a prompt this long: any outcome
    // but REQUEST_INVALID shows the schema let it through.
    const atLimit = "x".repeat(L.maxTextChars);
    expect(await outcome("complete", { prompt: atLimit })).toMatch(/^(final|POLICY_BLOCKED)$/);
    expect(await outcome("complete", { prompt: `${atLimit}x` })).toBe("REQUEST_INVALID");
    expect(await outcome("chat", { messages: [user(atLimit)] })).toMatch(/^(final|POLICY_BLOCKED)$/);
    expect(await outcome("chat", { messages: [user(`${atLimit}x`)] })).toBe("REQUEST_INVALID");
  });

  it("messages: 1 to maxMessages accepted, none or one more refused; only CHAT_ROLES", async () => {
    const many = (n: number) => Array.from({ length: n }, () => user("hi"));
    expect(await outcome("chat", { messages: many(1) })).toBe("final");
    expect(await outcome("chat", { messages: many(L.maxMessages) })).toBe("final");
    expect(await outcome("chat", { messages: [] })).toBe("REQUEST_INVALID");
    expect(await outcome("chat", { messages: many(L.maxMessages + 1) })).toBe("REQUEST_INVALID");
    for (const role of CHAT_ROLES) expect(await outcome("chat", { messages: [{ role, content: "hi" }] })).toBe("final");
    expect(await outcome("chat", { messages: [{ role: "tool", content: "hi" }] })).toBe("REQUEST_INVALID");
  });
});

describe("the SDK applies the same limits locally, before anything is sealed or sent", () => {
  let session: Session;
  let paths: string[];
  beforeAll(async () => {
    ({ session, paths } = await connectTo());
  });
  afterAll(closeServers);

  /** The outcome of one request through the SDK and how many sealed requests it sent. */
  async function viaSdk(send: (s: Session) => Promise<unknown>): Promise<{ outcome: string; sealed: number }> {
    const before = paths.filter((p) => p === "/sealed").length;
    let outcome = "final";
    try {
      await send(session);
    } catch (error) {
      const { kind, code } = error as { kind?: string; code?: string };
      outcome = `${kind}:${code}`;
    }
    return { outcome, sealed: paths.filter((p) => p === "/sealed").length - before };
  }
  const complete = (options: Record<string, unknown>) => (s: Session) => s.complete("hi", options as GenerationOptions);
  const chat = (messages: unknown) => async (s: Session) => {
    for await (const _ of s.chat(messages as ChatMessage[])) {
      // only the outcome matters
    }
  };

  const more: [string, Record<string, unknown>, Record<string, unknown>][] = [
    ["topP just above its bound", { topP: Number.MIN_VALUE }, { topP: -Number.MIN_VALUE }],
    ["seed an integer", { seed: 1 }, { seed: 1.5 }],
    ["maxTokens an integer", { maxTokens: 2 }, { maxTokens: 1.5 }],
    ["maxTokens Infinity", { maxTokens: L.maxTokens.max }, { maxTokens: Number.POSITIVE_INFINITY }],
    ["temperature Infinity", { temperature: L.temperature.max }, { temperature: Number.POSITIVE_INFINITY }],
    ["topP Infinity", { topP: L.topP.max }, { topP: Number.POSITIVE_INFINITY }],
    ["seed Infinity", { seed: L.seed.max }, { seed: Number.POSITIVE_INFINITY }],
    ["temperature -Infinity", { temperature: L.temperature.min }, { temperature: Number.NEGATIVE_INFINITY }],
  ];
  for (const [name, at, past] of [...cases, ...more]) {
    it(`${name}: sent and answered at the limit, BAD_OPTION one step past it with nothing sent`, async () => {
      expect(await viaSdk(complete(at))).toEqual({ outcome: "final", sealed: 1 });
      expect(await viaSdk(complete(past))).toEqual({ outcome: "configuration:BAD_OPTION", sealed: 0 });
    });
  }

  it("messages: 1 and maxMessages sent, none or one more refused (BAD_MESSAGES) with nothing sent", async () => {
    const many = (n: number) => Array.from({ length: n }, () => user("hi"));
    expect(await viaSdk(chat(many(1)))).toEqual({ outcome: "final", sealed: 1 });
    expect(await viaSdk(chat(many(L.maxMessages)))).toEqual({ outcome: "final", sealed: 1 });
    expect(await viaSdk(chat([]))).toEqual({ outcome: "configuration:BAD_MESSAGES", sealed: 0 });
    expect(await viaSdk(chat(many(L.maxMessages + 1)))).toEqual({ outcome: "configuration:BAD_MESSAGES", sealed: 0 });
  });

  it("prompt and message content: maxTextChars characters sent, one more refused with nothing sent", async () => {
    // Sent whole; the dev manifest's request policy may then block a prompt this long.
    const atLimit = "x".repeat(L.maxTextChars);
    const accepted = { outcome: expect.stringMatching(/^(final|policy:POLICY_BLOCKED)$/), sealed: 1 };
    expect(await viaSdk((s) => s.complete(atLimit))).toEqual(accepted);
    expect(await viaSdk((s) => s.complete(`${atLimit}x`))).toEqual({ outcome: "configuration:BAD_PROMPT", sealed: 0 });
    expect(await viaSdk(chat([user(atLimit)]))).toEqual(accepted);
    expect(await viaSdk(chat([user(`${atLimit}x`)]))).toEqual({ outcome: "configuration:BAD_MESSAGES", sealed: 0 });
  });
});
