/**
 * `cloister chat`'s interactive session (client/cli/run-client.ts chatInteractively) against an
 * enclave attested for real (a scripted engine that answers "ok"), typed into line by line the way
 * a terminal user does: the next line only once the session asks for it ("you> ").
 */
import { PassThrough, Writable } from "node:stream";
import { afterEach, describe, expect, it, vi } from "vitest";
import { chatInteractively } from "../../client/cli/run-client.ts";
import type { ChatMessage } from "../../client/sdk.ts";
import { REQUEST_LIMITS } from "../../sealed/request-limits.ts";
import { capturedOutput } from "../helpers/cli-in-process.ts";
import { closeServers, connectTo } from "./helpers.ts";

const output = capturedOutput();

afterEach(async () => {
  await closeServers();
});

/** A terminal's user: types the next of `lines` each time the session asks; none left, Ctrl-D. */
function typist(lines: string[]): { input: PassThrough; output: Writable } {
  const input = new PassThrough();
  const output = new Writable({
    write(chunk, _encoding, done) {
      if (String(chunk).includes("you> ")) {
        const next = lines.shift();
        if (next === undefined) input.end();
        else input.write(`${next}\n`);
      }
      done();
    },
  });
  return { input, output };
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
    await chatInteractively(session, {}, typist(["hello", "again", ""]));
    expect(sent).toEqual([["user:hello"], ["user:hello", "assistant:ok", "user:again"]]);
    expect(output.stdout).toBe("enclave> ok\nenclave> ok\n");
    expect(output.stderr).toBe("");
  });

  it("refuses a line longer than one message may be, naming the limit and its length, never its content; the session goes on", async () => {
    const { session, paths, sent } = await recordedSession();
    const secret = "my password is hunter2 ";
    const tooLong = secret.repeat(Math.ceil((max + 1) / secret.length)).slice(0, max + 1);
    await chatInteractively(session, {}, typist(["hello", tooLong, "again", ""]));
    expect(output.stderr).toBe(
      `cloister: USAGE: chat: the line typed: expected a prompt of at most ${max} characters (UTF-16 code units), found ${max + 1}; not sent: type a shorter one (an empty line ends)\n`,
    );
    // Not sent, and not kept in the conversation the next line is sent with.
    expect(sent).toEqual([["user:hello"], ["user:hello", "assistant:ok", "user:again"]]);
    expect(paths.filter((p) => p !== "/attestation" && p !== "/attestation/challenge")).toHaveLength(2);
    expect(output.stdout).toBe("enclave> ok\nenclave> ok\n");
  });

  it("sends a line of exactly the limit", async () => {
    // No pattern rule: it would refuse a prompt this long (fail-closed), which is not this test's.
    const { session, sent } = await recordedSession({ overrides: { requestPolicy: { rules: [] } } });
    await chatInteractively(session, {}, typist(["a".repeat(max), ""]));
    expect(sent.map((messages) => messages.map((m) => m.length))).toEqual([["user:".length + max]]);
    expect(output.stdout).toBe("enclave> ok\n");
    expect(output.stderr).toBe("");
  });
});
