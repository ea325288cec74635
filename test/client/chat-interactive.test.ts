/**
 * `cloister chat`'s interactive session (client/cli/run-client.ts chatInteractively) against an
 * enclave attested for real (a scripted engine that answers "ok"), typed into line by line the way
 * a terminal user does: the next line only once the session asks for it ("you> ").
 */
import { PassThrough, Writable } from "node:stream";
import { afterEach, describe, expect, it, vi } from "vitest";
import { type ChatIo, chatInteractively } from "../../client/cli/run-client.ts";
import { ClientError } from "../../client/errors.ts";
import type { ChatEvent, ChatMessage, Session } from "../../client/sdk.ts";
import { REQUEST_LIMITS } from "../../sealed/request-limits.ts";
import { capturedOutput } from "../helpers/cli-in-process.ts";
import { closeServers, connectTo } from "./helpers.ts";

/** Caught only to check that the session writes nothing there: all it writes goes to its io. */
const processOutput = capturedOutput();

afterEach(async () => {
  expect(processOutput).toMatchObject({ stdout: "", stderr: "" });
  await closeServers();
});

/** What a session wrote to its io: its notices (the prompts "you> " left out) and its answers. */
interface Written {
  notices: string;
  answers: string;
}

/** A stream that appends what is written to it to `written[field]`, the prompt "you> " left out (onPrompt runs instead). */
function collector(written: Written, field: keyof Written, onPrompt: () => void = () => {}): Writable {
  return new Writable({
    write(chunk, _encoding, done) {
      const text = String(chunk);
      written[field] += text.replaceAll("you> ", "");
      if (text.includes("you> ")) onPrompt();
      done();
    },
  });
}

/**
 * A terminal's user: types the next of `lines` each time the session asks; none left, Ctrl-D.
 * `written` fills as the session writes.
 */
function typist(lines: string[]): { io: ChatIo; written: Written } {
  const input = new PassThrough();
  const written: Written = { notices: "", answers: "" };
  const output = collector(written, "notices", () => {
    const next = lines.shift();
    if (next === undefined) input.end();
    else input.write(`${next}\n`);
  });
  return { io: { input, output, answers: collector(written, "answers") }, written };
}

/** A session whose chat requests are recorded as sent (role:content), then sent for real. */
async function recordedSession(options: Parameters<typeof connectTo>[0] = {}) {
  const { session, paths } = await connectTo(options);
  const sent: string[][] = [];
  const chat = session.chat.bind(session);
  vi.spyOn(session, "chat").mockImplementation((messages: readonly ChatMessage[], options) => {
    sent.push(messages.map((m) => `${m.role}:${m.content}`));
    return chat(messages, options);
  });
  return { session, paths, sent };
}

describe("cloister chat, interactive", () => {
  const max = REQUEST_LIMITS.maxTextChars;

  it("sends each line with the conversation so far, and ends at an empty line", async () => {
    const { session, sent } = await recordedSession();
    const { io, written } = typist(["hello", "again", ""]);
    await chatInteractively(session, {}, io);
    expect(sent).toEqual([["user:hello"], ["user:hello", "assistant:ok", "user:again"]]);
    expect(written.answers).toBe("enclave> ok\nenclave> ok\n");
    expect(written.notices).toBe("");
  });

  it("refuses a line longer than one message may be, naming the limit and its length, never its content; the session goes on", async () => {
    const { session, paths, sent } = await recordedSession();
    const secret = "my password is hunter2 ";
    const tooLong = secret.repeat(Math.ceil((max + 1) / secret.length)).slice(0, max + 1);
    const { io, written } = typist(["hello", tooLong, "again", ""]);
    await chatInteractively(session, {}, io);
    expect(written.notices).toBe(
      `cloister: USAGE: chat: the line typed: expected a prompt of at most ${max} characters (UTF-16 code units), found ${max + 1}; not sent: type a shorter one (an empty line ends)\n`,
    );
    // Not sent, and not kept in the conversation the next line is sent with.
    expect(sent).toEqual([["user:hello"], ["user:hello", "assistant:ok", "user:again"]]);
    expect(paths.filter((p) => p !== "/attestation" && p !== "/attestation/challenge")).toHaveLength(2);
    expect(written.answers).toBe("enclave> ok\nenclave> ok\n");
  });

  it("sends a line of exactly the limit", async () => {
    // No pattern rule: it would refuse a prompt this long (fail-closed), which is not this test's.
    const { session, sent } = await recordedSession({ overrides: { requestPolicy: { rules: [] } } });
    const { io, written } = typist(["a".repeat(max), ""]);
    await chatInteractively(session, {}, io);
    expect(sent.map((messages) => messages.map((m) => m.length))).toEqual([["user:".length + max]]);
    expect(written.answers).toBe("enclave> ok\n");
    expect(written.notices).toBe("");
  });

  /** `session`, whose chat throws what `refuse` returns for the messages (null: the real answer). */
  function refusing(session: Session, sent: string[][], refuse: (messages: readonly ChatMessage[]) => Error | null) {
    const chat = session.chat.bind(session);
    vi.spyOn(session, "chat").mockImplementation((messages: readonly ChatMessage[], options) => {
      sent.push(messages.map((m) => `${m.role}:${m.content}`));
      const error = refuse(messages);
      if (error === null) return chat(messages, options);
      return (async function* (): AsyncGenerator<ChatEvent> {
        // No text first: the refusal comes before any, as the enclave's do.
        yield* [];
        throw error;
      })();
    });
  }

  it("leaves the oldest exchanges out when the enclave finds the conversation longer than the model's context, says so once, and sends the line again", async () => {
    const { session } = await connectTo();
    const sent: string[][] = [];
    const tooLong = new ClientError("policy", "PROMPT_TOO_LONG", "enclave refused or failed the request", {
      origin: "enclave",
    });
    refusing(session, sent, (messages) => (messages.length > 3 ? tooLong : null));
    const { io, written } = typist(["one", "two", "three", "four", ""]);
    await chatInteractively(session, {}, io);
    expect(sent).toEqual([
      ["user:one"],
      ["user:one", "assistant:ok", "user:two"],
      ["user:one", "assistant:ok", "user:two", "assistant:ok", "user:three"],
      ["user:two", "assistant:ok", "user:three"],
      ["user:two", "assistant:ok", "user:three", "assistant:ok", "user:four"],
      ["user:three", "assistant:ok", "user:four"],
    ]);
    expect(written.notices).toBe(
      "cloister: the conversation is longer than the model's context: the oldest exchanges are no longer sent\n",
    );
  });

  it("leaves the oldest exchanges out when the conversation is too large to seal (the SDK's REQUEST_TOO_LARGE) and sends the line again", async () => {
    const { session } = await connectTo();
    const sent: string[][] = [];
    refusing(session, sent, (messages) =>
      messages.length > 3
        ? new ClientError("configuration", "REQUEST_TOO_LARGE", "request size: expected a ciphertext of at most …")
        : null,
    );
    const { io, written } = typist(["one", "two", "three", ""]);
    await chatInteractively(session, {}, io);
    expect(sent.at(-1)).toEqual(["user:two", "assistant:ok", "user:three"]);
    expect(written.notices).toBe(
      "cloister: the conversation is larger than one request may be: the oldest exchanges are no longer sent\n",
    );
  });

  it("on the host's word that a request is too large (it may have forwarded it), resends nothing and leaves nothing out", async () => {
    const { session } = await connectTo();
    const sent: string[][] = [];
    // BODY_TOO_LARGE is always the host's; a host may claim REQUEST_TOO_LARGE too.
    const claims = [
      new ClientError("transport", "BODY_TOO_LARGE", "/v1/sealed: HTTP 413 BODY_TOO_LARGE", { origin: "host" }),
      new ClientError("transport", "REQUEST_TOO_LARGE", "/v1/sealed: HTTP 413 REQUEST_TOO_LARGE", { origin: "host" }),
    ];
    refusing(session, sent, (messages) => (messages.length > 1 ? (claims.shift() ?? null) : null));
    const { io, written } = typist(["one", "two", "three", "four", ""]);
    await chatInteractively(session, {}, io);
    expect(sent).toEqual([
      ["user:one"],
      ["user:one", "assistant:ok", "user:two"],
      ["user:one", "assistant:ok", "user:three"],
      ["user:one", "assistant:ok", "user:four"],
    ]);
    expect(written.notices).toBe(
      [
        "cloister: BODY_TOO_LARGE: /v1/sealed: HTTP 413 BODY_TOO_LARGE; not answered (the conversation is over the host's request limit: start a new one): the session goes on (an empty line ends)",
        "cloister: REQUEST_TOO_LARGE: /v1/sealed: HTTP 413 REQUEST_TOO_LARGE; not answered: the session goes on (an empty line ends)",
        "",
      ].join("\n"),
    );
  });

  it("a host's claim of PROMPT_TOO_LONG (not the enclave's word) leaves nothing out: the turn is not answered", async () => {
    const { session } = await connectTo();
    const sent: string[][] = [];
    const claimed = new ClientError("transport", "PROMPT_TOO_LONG", "host refused the request: PROMPT_TOO_LONG");
    refusing(session, sent, (messages) => (messages.length > 1 ? claimed : null));
    const { io, written } = typist(["one", "two", "three", ""]);
    await chatInteractively(session, {}, io);
    expect(sent).toEqual([
      ["user:one"],
      ["user:one", "assistant:ok", "user:two"],
      ["user:one", "assistant:ok", "user:three"],
    ]);
    expect(written.notices).toBe(
      "cloister: PROMPT_TOO_LONG: host refused the request: PROMPT_TOO_LONG; not answered: the session goes on (an empty line ends)\n".repeat(
        2,
      ),
    );
  });

  it("says a refused turn and goes on without it; a failed integrity check ends the session", async () => {
    const { session } = await connectTo();
    const sent: string[][] = [];
    refusing(session, sent, (messages) => {
      const last = messages.at(-1)?.content;
      if (last === "blocked")
        return new ClientError("policy", "POLICY_BLOCKED", "enclave refused or failed the request");
      if (last === "tampered")
        return new ClientError("integrity", "FRAME_TAMPERED", "response integrity: frame 0 does not open");
      return null;
    });
    const { io, written } = typist(["hello", "blocked", "again", "tampered", "never", ""]);
    await expect(chatInteractively(session, {}, io)).rejects.toMatchObject({
      code: "FRAME_TAMPERED",
    });
    expect(sent).toEqual([
      ["user:hello"],
      ["user:hello", "assistant:ok", "user:blocked"],
      ["user:hello", "assistant:ok", "user:again"],
      ["user:hello", "assistant:ok", "user:again", "assistant:ok", "user:tampered"],
    ]);
    expect(written.notices).toBe(
      "cloister: POLICY_BLOCKED: enclave refused or failed the request; not answered: the session goes on (an empty line ends)\n",
    );
  });

  it("reads lines typed while an answer streams after it, none lost", async () => {
    const { session, sent } = await recordedSession();
    const input = new PassThrough();
    input.write("one\ntwo\nthree\n\n");
    await chatInteractively(session, {}, { input, output: new PassThrough(), answers: new PassThrough() });
    expect(sent).toEqual([
      ["user:one"],
      ["user:one", "assistant:ok", "user:two"],
      ["user:one", "assistant:ok", "user:two", "assistant:ok", "user:three"],
    ]);
  });

  it("ends at the end of input (Ctrl-D)", async () => {
    const { session, sent } = await recordedSession();
    const input = new PassThrough();
    input.end("one\n");
    await chatInteractively(session, {}, { input, output: new PassThrough(), answers: new PassThrough() });
    expect(sent).toEqual([["user:one"]]);
  });

  it("sends at most the messages a chat request may hold, leaving the oldest exchanges out", async () => {
    const { session } = await connectTo();
    const sent: number[] = [];
    vi.spyOn(session, "chat").mockImplementation((messages: readonly ChatMessage[]) => {
      sent.push(messages.length);
      return (async function* (): AsyncGenerator<ChatEvent> {
        yield { type: "text", text: "ok" };
      })();
    });
    const turns = REQUEST_LIMITS.maxMessages / 2 + 2;
    const lines = Array.from({ length: turns }, (_, i) => `line ${i}`);
    const { io, written } = typist([...lines, ""]);
    await chatInteractively(session, {}, io);
    expect(sent.slice(0, 2)).toEqual([1, 3]);
    expect(Math.max(...sent)).toBe(REQUEST_LIMITS.maxMessages - 1);
    expect(sent.at(-1)).toBe(REQUEST_LIMITS.maxMessages - 1);
    expect(written.notices).toBe(
      `cloister: a chat request holds at most ${REQUEST_LIMITS.maxMessages} messages: the oldest exchanges are no longer sent\n`,
    );
  });
});
