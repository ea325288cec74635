/**
 * What the SDK checks and returns as an application developer meets it, against an enclave booted in
 * this process (scripted engine, attested for real):
 * - `complete()` returns the checked receipt and audit reference the stream's `done` event carries;
 *   a refusal's ClientError keeps its audit opening out of JSON and inspection;
 * - arguments out of the enclave's limits (sealed/request-limits.ts) are refused before anything is
 *   sealed or sent, as configuration errors naming the option, what was expected and what was found;
 * - `connect()` refuses a missing API key and a URL with a user name or password without contacting
 *   the host, and never repeats the password.
 */
import { inspect } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { ClientError } from "../../client/errors.ts";
import {
  type ChatEvent,
  type ChatMessage,
  type ConnectOptions,
  connect,
  type GenerationOptions,
  parseHostUrl,
} from "../../client/sdk.ts";
import type { Transport } from "../../client/transport.ts";
import { textHash, verifyReceipt } from "../../sealed/index.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { closeServers, connectTo, devPolicy } from "./helpers.ts";

afterEach(closeServers);

const SECRET = "my password is hunter2";

describe("Session.complete: the whole answer, with what the stream's final event carries", () => {
  it("returns the checked receipt and the audit reference, like the done event", async () => {
    const { enclave, session } = await connectTo();
    const completion = await session.complete("hello");
    expect(completion).toMatchObject({ text: "ok", finishReason: "stop" });
    const receipt = await verifyReceipt(completion.receipt, enclave.publicKeys.signing);
    expect(receipt.answerHash).toBe(textHash(completion.text));
    expect(completion.audit?.requestIdHash).toMatch(/^[0-9a-f]{64}$/);
    expect(completion.audit?.opening).toMatch(/^[0-9a-f]{64}$/);
    let done: object | undefined;
    for await (const event of session.completeStream("hello")) if (event.type === "done") done = event;
    const { type: _type, ...fields } = done as { type: string };
    expect(Object.keys(completion).sort()).toEqual(["text", ...Object.keys(fields)].sort());
  });

  it("the audit opening stays out of JSON, inspection, spread and keys of a result and of a done event", async () => {
    const { session } = await connectTo();
    const completion = await session.complete("hello");
    let done: Extract<ChatEvent, { type: "done" }> | undefined;
    for await (const event of session.completeStream("hello")) if (event.type === "done") done = event;
    for (const value of [completion, done]) {
      const opening = value?.audit?.opening;
      expect(opening).toMatch(/^[0-9a-f]{64}$/);
      const requestIdHash = value?.audit?.requestIdHash ?? "";
      // What a logger would print: the record's name, never the opening.
      for (const shown of [
        JSON.stringify(value),
        inspect(value, { depth: 10 }),
        JSON.stringify({ ...value, audit: { ...value?.audit } }),
      ]) {
        expect(shown).toContain(requestIdHash);
        expect(shown).not.toContain(opening);
      }
      expect(Object.keys(value?.audit ?? {})).toEqual(["requestIdHash"]);
    }
  });

  it("a failed request throws a ClientError whose audit opening stays out of JSON and inspection", async () => {
    const { session } = await connectTo({ script: [new Error("engine broke")] });
    const error = await rejectionOf(session.complete("hello"), ClientError);
    const opening = error.audit?.opening;
    expect(opening).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(error)).not.toContain(opening);
    expect(inspect(error, { depth: 5 })).not.toContain(opening);
  });
});

describe("Session: arguments out of the enclave's limits are refused before sealing", () => {
  type Case = [string, (s: Awaited<ReturnType<typeof connectTo>>["session"]) => Promise<unknown>, string, string];
  const complete = (options: GenerationOptions) => (s: Awaited<ReturnType<typeof connectTo>>["session"]) =>
    s.complete("hi", options);
  const chat = (messages: unknown) => (s: Awaited<ReturnType<typeof connectTo>>["session"]) =>
    drain(s.chat(messages as ChatMessage[]));
  const cases: Case[] = [
    [
      "maxTokens 0",
      complete({ maxTokens: 0 }),
      "BAD_OPTION",
      "maxTokens: expected an integer from 1 to 1000000, found 0",
    ],
    ["maxTokens past the limit", complete({ maxTokens: 1_000_001 }), "BAD_OPTION", "found 1000001"],
    ["maxTokens not an integer", complete({ maxTokens: 1.5 }), "BAD_OPTION", "maxTokens: expected an integer"],
    [
      "temperature NaN",
      complete({ temperature: Number.NaN }),
      "BAD_OPTION",
      "temperature: expected a number from 0 to 2, found NaN",
    ],
    ["temperature 2.5", complete({ temperature: 2.5 }), "BAD_OPTION", "found 2.5"],
    ["topP 0", complete({ topP: 0 }), "BAD_OPTION", "topP: expected a number above 0 and at most 1, found 0"],
    ["seed -1", complete({ seed: -1 }), "BAD_OPTION", "seed: expected an integer from 0 to 4294967295, found -1"],
    [
      "a signal that is not an AbortSignal (it would be listened to only after sealing)",
      complete({ signal: { aborted: false } as unknown as AbortSignal }),
      "BAD_OPTION",
      "signal: expected an AbortSignal, found a value of type object",
    ],
    [
      "nine stop strings",
      complete({ stop: Array(9).fill("x") }),
      "BAD_OPTION",
      "stop: expected an array of at most 8 strings, found an array of 9 items",
    ],
    [
      "an empty stop string",
      complete({ stop: [""] }),
      "BAD_OPTION",
      "stop[0]: expected a string of 1 to 64 characters, found an empty string",
    ],
    ["no messages", chat([]), "BAD_MESSAGES", "messages: expected an array of 1 to 256 messages, found an empty array"],
    [
      "role tool",
      chat([{ role: "tool", content: "x" }]),
      "BAD_MESSAGES",
      'messages[0].role: expected system, user, assistant, found "tool"',
    ],
    [
      "an unknown field",
      chat([{ role: "user", content: "x", name: "bob" }]),
      "BAD_MESSAGES",
      'messages[0]: expected only role and content, found also "name"',
    ],
    [
      "a secret as the role",
      chat([{ role: SECRET, content: "x" }]),
      "BAD_MESSAGES",
      `found a string of ${SECRET.length} characters`,
    ],
    [
      "content not a string",
      chat([{ role: "user", content: 42 }]),
      "BAD_MESSAGES",
      "messages[0].content: expected a string of at most 1000000 characters, found 42",
    ],
    [
      "a sparse stop array (a hole is sent as null)",
      // biome-ignore lint/suspicious/noSparseArray: the case under test
      complete({ stop: [, "a"] as unknown as string[] }),
      "BAD_OPTION",
      "stop[0]: expected a string of 1 to 64 characters, found undefined",
    ],
    [
      "a sparse messages array (a hole is sent as null)",
      // biome-ignore lint/suspicious/noSparseArray: the case under test
      chat([, { role: "user", content: "x" }]),
      "BAD_MESSAGES",
      "messages[0]: expected an object {role, content}, found undefined",
    ],
    [
      "a conversation too large to seal, each message within its limit",
      chat(Array.from({ length: 17 }, () => ({ role: "user", content: "x".repeat(1_000_000) }))),
      "REQUEST_TOO_LARGE",
      "request size: expected a ciphertext of at most 16777216 bytes, found ",
    ],
    [
      "a prompt past the limit",
      (s) => s.complete("x".repeat(1_000_001)),
      "BAD_PROMPT",
      "prompt: expected a string of at most 1000000 characters, found a string of 1000001 characters",
    ],
  ];
  for (const [name, call, code, message] of cases) {
    it(`${name} → configuration ${code}, nothing sent`, async () => {
      const { session, paths } = await connectTo();
      const error = await call(session).catch((e: unknown) => e);
      expect(error).toMatchObject({ name: "ClientError", kind: "configuration", code });
      expect((error as Error).message).toContain(message);
      expect((error as Error).message).not.toContain(SECRET);
      expect(paths).not.toContain("/sealed");
    });
  }

  it("every limit itself is accepted", async () => {
    const { session } = await connectTo();
    const options = {
      maxTokens: 1_000_000,
      temperature: 2,
      topP: 1,
      seed: 0xffff_ffff,
      stop: Array(8).fill("x".repeat(64)),
    };
    expect((await session.complete("hi", options)).text).toBe("ok");
    expect((await session.complete("hi", { temperature: 0, seed: 0, maxTokens: 1 })).text).toBe("ok");
  });
});

async function drain(events: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of events) {
    // only the outcome matters
  }
}

describe("connect: refused without contacting the host", () => {
  async function refused(options: Partial<ConnectOptions>) {
    let calls = 0;
    const transport: Transport = () => {
      calls++;
      throw new Error("must not be called");
    };
    const error = await rejectionOf(
      connect({
        url: "http://127.0.0.1:9",
        policy: await devPolicy(),
        apiKey: "ck_test_0123456789abcdef",
        transport,
        ...options,
      } as ConnectOptions),
      ClientError,
    );
    expect(calls).toBe(0);
    expect(error.kind).toBe("configuration");
    return error;
  }

  it("a missing or empty API key, or one that cannot go in a header", async () => {
    expect(await refused({ apiKey: "" })).toMatchObject({
      code: "BAD_API_KEY",
      message:
        "apiKey: expected the host's API key (a non-empty string of printable ASCII without white space), found an empty string",
    });
    // A key given as a number is not shown either: its type only.
    expect(await refused({ apiKey: 123456789 as unknown as string })).toMatchObject({
      code: "BAD_API_KEY",
      message:
        "apiKey: expected the host's API key (a non-empty string of printable ASCII without white space), found a value of type number",
    });
    // Undefined (often process.env.CLOISTER_API_KEY left unset): with where cloister up keeps its key.
    expect(await refused({ apiKey: undefined as unknown as string })).toMatchObject({
      code: "BAD_API_KEY",
      message:
        "apiKey: expected the host's API key (a non-empty string of printable ASCII without white space), found undefined (an environment variable not set? cloister up writes its deployment's key to .cloister/api-key)",
    });
    const withNewline = await refused({ apiKey: "ck_secret_key_value\n" });
    expect(withNewline.code).toBe("BAD_API_KEY");
    expect(withNewline.message).not.toContain("ck_secret_key_value");
    expect(withNewline.message).toMatch(
      /with 1 line break \(a key file read with its line break, or of several lines\?\)$/,
    );
  });

  it("says what an API key that cannot go in a header holds, by kind and count, never the key", async () => {
    const cases: [string, string][] = [
      ["ck secret key", "with 2 spaces (a key copied with the text around it?)"],
      ["ck_secret\tkey", "with 1 tab"],
      ["ck_secret\u0000key\u007f", "with 2 control characters"],
      ["\u201cck_secret_key\u201d", "with 2 non-ASCII characters (a typographic quote or dash pasted with it?)"],
      [
        "ck secret\r\nkey",
        "with 2 line breaks (a key file read with its line break, or of several lines?), 1 space (a key copied with the text around it?)",
      ],
    ];
    for (const [apiKey, found] of cases) {
      const error = await refused({ apiKey });
      expect(error.code).toBe("BAD_API_KEY");
      expect(error.message).toBe(
        `apiKey: expected printable ASCII without white space (it is sent in an HTTP header), found a string of ${apiKey.length} characters ${found}`,
      );
      expect(error.message).not.toContain("secret");
    }
  });

  it("a URL with a user name or password, never repeating it", async () => {
    const both = await refused({ url: "http://user:s3cretpw@127.0.0.1:9" });
    expect(both.code).toBe("URL_CREDENTIALS");
    expect(both.message).toContain("found a user name and password");
    expect(both.message).toContain("the API key (apiKey) is the credential");
    const userOnly = await refused({ url: "https://user@cloister.example" });
    expect(userOnly).toMatchObject({
      code: "URL_CREDENTIALS",
      message: expect.stringContaining("found a user name ("),
    });
    for (const error of [both, userOnly]) {
      expect(`${error.message} ${inspect(error)}`).not.toMatch(/s3cretpw|user@/);
    }
    // A URL that does not even parse: its user name and password are not repeated either.
    const malformed = await refused({ url: "http://user:s3cretpw@[::1" });
    expect(malformed.code).toBe("BAD_URL");
    expect(inspect(malformed, { depth: 5 })).not.toContain("s3cretpw");
  });

  it("a URL that does not parse, or names another scheme, is never shown when it has an @", () => {
    const refusal = (url: string) => {
      try {
        parseHostUrl(url);
      } catch (error) {
        expect(error).toBeInstanceOf(ClientError);
        return error as ClientError;
      }
      throw new Error(`accepted ${url}`);
    };
    // Passwords with /, ? or #, and forms no "//…@" pattern sees.
    for (const url of [
      "http://u:s3c/retpw@127.0.0.1:x",
      "http://u:s3c?retpw@127.0.0.1:x",
      "http://u:s3c#retpw@127.0.0.1:x",
      "http:\\\\u:s3cretpw@[::1",
      "http:/u:s3cretpw@[::1",
      "alice:s3cretpw@host",
    ]) {
      const error = refusal(url);
      expect(error.code, url).toBe("BAD_URL");
      expect(`${error.message} ${inspect(error, { depth: 5 })}`, url).not.toMatch(/s3c|retpw|alice/);
      expect(error.message, url).toContain(
        `found a string of ${url.length} characters with a user/password-like part (…@), not shown`,
      );
    }
    // Without an @ the input is shown, cut to its first 200 characters.
    expect(refusal("notaurl").message).toBe('url: expected an http(s) URL, found "notaurl"');
    const long = `x${"y".repeat(300)}`;
    const cut = refusal(long).message;
    expect(cut).toContain(`"x${"y".repeat(199)}"… (301 characters)`);
    expect(cut).not.toContain("y".repeat(200));
    expect(refusal("localhost:8080").message).toBe(
      'url: expected http: or https:, found "localhost:8080", a host and port without one (write http://localhost:8080)',
    );
    // An IP address and port (the URL parser refuses them whole: no scheme starts with a digit or
    // a bracket) are said so too, with the URL meant; not a port no URL can have.
    expect(refusal("127.0.0.1:8080").message).toBe(
      'url: expected an http(s) URL, found "127.0.0.1:8080", a host and port without http: or https: (write http://127.0.0.1:8080)',
    );
    expect(refusal("[::1]:8080").message).toBe(
      'url: expected an http(s) URL, found "[::1]:8080", a host and port without http: or https: (write http://[::1]:8080)',
    );
    expect(refusal("127.0.0.1:99999").message).toBe('url: expected an http(s) URL, found "127.0.0.1:99999"');
    // Another scheme is named by itself.
    expect(refusal("ftp://files.example").message).toBe("url: expected http: or https:, found ftp:");
    // A query or fragment (a token may be there) is not shown.
    for (const url of ["host:9/x?token=s3cret", "not a url#s3cret"]) {
      expect(refusal(url).message, url).not.toContain("s3cret");
    }
    // Nor that of a base URL that parses and would be taken but for it: refused for it (each route
    // goes after the base URL), shown cut at its ? or #.
    for (const [url, shown] of [
      ["http://host.test/x?token=s3cret", '"http://host.test/x?… (the rest not shown)"'],
      ["https://host.test#s3cret", '"https://host.test#… (the rest not shown)"'],
    ] as const) {
      const error = refusal(url);
      expect(error.code, url).toBe("BAD_URL");
      expect(error.message, url).toBe(
        `url: expected the host's base URL without a query or fragment (each route is added after it), found ${shown}`,
      );
      expect(inspect(error, { depth: 5 }), url).not.toContain("s3cret");
    }
  });
});

describe("connect({cacheScope}): a string of at least 16 characters", () => {
  const sent: string[] = [];
  const transport: Transport = async (url) => {
    sent.push(url);
    throw new Error("nothing is sent for a bad cacheScope");
  };
  // A cache scope is a secret: a value that is not a string is named by its type only (a number
  // whole would show it), a string by its length, in describeFound's words.
  const cases: [unknown, string, string][] = [
    [
      12345678901234567n,
      "BAD_OPTION",
      "cacheScope: expected a string (a secret of at least 16 characters), found a value of type bigint",
    ],
    [{ toString: () => "a".repeat(20) }, "BAD_OPTION", "found a value of type object"],
    [["a".repeat(20)], "BAD_OPTION", "found an array of 1 item"],
    [1e20, "BAD_OPTION", "found a value of type number"],
    [true, "BAD_OPTION", "found a value of type boolean"],
    [
      "s3cret-scope",
      "CACHE_SCOPE_TOO_SHORT",
      "cacheScope: expected a secret of at least 16 characters, found a string of 12 characters",
    ],
    [
      "s",
      "CACHE_SCOPE_TOO_SHORT",
      "cacheScope: expected a secret of at least 16 characters, found a string of 1 character",
    ],
    ["", "CACHE_SCOPE_TOO_SHORT", "cacheScope: expected a secret of at least 16 characters, found an empty string"],
  ];
  for (const [cacheScope, code, message] of cases) {
    it(`${typeof cacheScope} ${String(cacheScope).length} → ${code}`, async () => {
      const error = await connect({
        url: "http://127.0.0.1:1",
        policy: await devPolicy(),
        apiKey: "key",
        transport,
        cacheScope: cacheScope as string,
      }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ClientError);
      expect(error).toMatchObject({ kind: "configuration", code });
      expect((error as Error).message).toContain(message);
      if (code === "CACHE_SCOPE_TOO_SHORT") {
        expect((error as Error).message).toBe(message);
        expect((error as Error).message).not.toContain("s3cret");
      }
      expect((error as Error).message).not.toMatch(/12345678901234567|100000000000000000000|true/);
      if (code === "BAD_OPTION") expect(error).toMatchObject({ field: "cacheScope" });
      expect(sent).toEqual([]);
    });
  }
});

describe("connect(): each option's bounds, one past refused and the bound itself taken", () => {
  // Nothing listens: an option that passes its check ends at the first request (HOST_UNREACHABLE).
  const transport: Transport = async () => {
    throw new Error("no host here");
  };
  const cases: [string, string, Partial<ConnectOptions>][] = [
    ["cacheScope of 15 characters", "CACHE_SCOPE_TOO_SHORT", { cacheScope: "a".repeat(15) }],
    ["cacheScope of 16 characters", "HOST_UNREACHABLE", { cacheScope: "a".repeat(16) }],
    ["reattestAfterMs NaN", "BAD_REATTEST_INTERVAL", { reattestAfterMs: Number.NaN }],
    ["reattestAfterMs -1", "BAD_REATTEST_INTERVAL", { reattestAfterMs: -1 }],
    ["reattestAfterMs Infinity", "HOST_UNREACHABLE", { reattestAfterMs: Number.POSITIVE_INFINITY }],
    ["attestationTimeoutMs 0", "BAD_OPTION", { attestationTimeoutMs: 0 }],
    ["attestationTimeoutMs NaN", "BAD_OPTION", { attestationTimeoutMs: Number.NaN }],
    ["attestationTimeoutMs 2^31", "BAD_OPTION", { attestationTimeoutMs: 2 ** 31 }],
    ["attestationTimeoutMs 2^31 - 1", "HOST_UNREACHABLE", { attestationTimeoutMs: 2 ** 31 - 1 }],
    ["apiKeySource empty", "BAD_OPTION", { apiKeySource: "" }],
    ["apiKeySource not a string", "BAD_OPTION", { apiKeySource: 5 as never }],
  ];
  it.each(cases)("%s → %s", async (_name, code, options) => {
    const error = await connect({
      url: "http://127.0.0.1:1",
      policy: await devPolicy(),
      apiKey: "key",
      transport,
      ...options,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ClientError);
    expect(error).toMatchObject({ code });
  });
});
