import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { InvalidArgumentError } from "commander";
import { describe, expect, it } from "vitest";
import { fileErrorCause } from "../../attestation/bounded-read.ts";
import { readBoundedFile, readOptionFile } from "../../client/cli/bounded-file.ts";
import { childEnvironment } from "../../client/cli/deploy.ts";
import {
  forcedOutput,
  formatCliError,
  listenUsageError,
  loopbackListenError,
  printJson,
  stopWhenParentExits,
  UsageError,
  usageLine,
} from "../../client/cli/output.ts";
import { timeOption } from "../../client/cli/time-option.ts";
import { simulatorClientPolicy } from "../../client/dev-policy.ts";
import { ListenError } from "../../enclave/http.ts";
import { generateManifestSigningKey } from "../../manifests/sign.ts";

const CLI = fileURLToPath(new URL("../../bin/cloister.js", import.meta.url));

/**
 * Runs the CLI in a process of its own. Each run costs about 0.4 s on an idle machine and 6 s or
 * more on a loaded 2-core one (five took over 30 s): the tests that run it several times have 120 s.
 */
function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, ...env },
    });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8");
    });
    child.on("close", (code) => resolve({ code, stderr }));
  });
}

describe("one line per error: cloister: CODE: message", () => {
  it("forcedOutput: --force replaces the option's file, is refused without the option, and refuses by default", () => {
    expect(forcedOutput(true, "out.json", "--out")).toBe("replace");
    expect(forcedOutput(undefined, "out.json", "--out")).toBe("refuse");
    expect(forcedOutput(false, undefined, "--out")).toBe("refuse");
    expect(() => forcedOutput(true, undefined, "--document-out")).toThrow(
      new UsageError("--force: replaces the file of --document-out, which was not given (run with --help for usage)"),
    );
  });

  it("formats commander's usage errors as one USAGE line", () => {
    expect(usageLine("error: required option '--url <url>' not specified\n")).toBe(
      "cloister: USAGE: required option '--url <url>' not specified (run with --help for usage)\n",
    );
    // Commander's suggestion in this line's words, not a second parenthesis before the hint.
    expect(usageLine("error: unknown option '--x'\n(Did you mean --y?)\n")).toBe(
      "cloister: USAGE: unknown option '--x': did you mean --y? (run with --help for usage)\n",
    );
    expect(usageLine("error: unknown command 'ab'\n(Did you mean one of aa, bb?)\n")).toBe(
      "cloister: USAGE: unknown command 'ab': did you mean one of aa, bb? (run with --help for usage)\n",
    );
    expect(formatCliError(new UsageError("--key: expected 64 hex characters, found 2"))).toBe(
      "cloister: USAGE: --key: expected 64 hex characters, found 2",
    );
  });

  it("writes what commander quotes of the command line (an argument, a value) with its controls as \\u escapes", () => {
    // A value pasted from untrusted text: an escape sequence (clear the screen, write the clipboard)
    // and a lone carriage return (writes over the line) reach the terminal as text, not acted on.
    const refused = "option '--max-tokens <n>' argument";
    expect(usageLine(`error: ${refused} '\u001b[2J\u001b]52;c;eA==\u0007' is invalid.\n`)).toBe(
      `cloister: USAGE: ${refused} '\\u001b[2J\\u001b]52;c;eA==\\u0007' is invalid. (run with --help for usage)\n`,
    );
    expect(usageLine("error: unknown command 'a\rb\u202ec'\n")).toBe(
      "cloister: USAGE: unknown command 'a\\u000db\\u202ec' (run with --help for usage)\n",
    );
  });

  it("prints usage errors of every depth of sub-command as that one line, exit 2", async () => {
    for (const args of [
      ["attest"],
      ["bogus"],
      ["model", "run"],
      ["kbs", "serve"],
      ["attest", "--url", "notaurl", "--policy", "x"],
    ]) {
      const result = await run(args);
      expect(result.code, args.join(" ")).toBe(2);
      expect(result.stderr, args.join(" ")).toMatch(/^cloister: USAGE: [^\n]+\n$/);
    }
  }, 120_000);

  it("names a mistyped option, with commander's suggestion, before a required option it may stand for", async () => {
    for (const [args, line] of [
      [["attest", "--ulr", "http://127.0.0.1:9", "--policy", "p.json"], "unknown option '--ulr': did you mean --url?"],
      [["kbs", "serve", "--confg", "c.json"], "unknown option '--confg': did you mean --config?"],
      [["atest"], "unknown command 'atest': did you mean attest?"],
      [["audit", "verfy"], "unknown command 'verfy': did you mean verify?"],
      [
        ["receipt", "verify", "--recipt", "r.json", "--key", "ab"],
        "unknown option '--recipt': did you mean --receipt?",
      ],
      [
        ["chat", "--url", "http://127.0.0.1:9", "--polcy", "p.json", "hi"],
        "unknown option '--polcy': did you mean --policy?",
      ],
    ] as const) {
      const result = await run([...args]);
      expect(result, args.join(" ")).toEqual({
        code: 2,
        stderr: `cloister: USAGE: ${line} (run with --help for usage)\n`,
      });
    }
    // With no mistyped option, a required option left out is still the error, as commander words it.
    for (const [args, option] of [
      [["attest", "--policy", "p.json"], "--url <url>"],
      [["kbs", "serve"], "--config <file>"],
      [["audit", "verify"], "--log <file>"],
    ] as const) {
      const result = await run([...args]);
      expect(result, args.join(" ")).toEqual({
        code: 2,
        stderr: `cloister: USAGE: required option '${option}' not specified (run with --help for usage)\n`,
      });
    }
  }, 120_000);

  it("exits 2 for a client configuration error (a malformed URL), with its own code", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cloister-cli-output-"));
    try {
      const policy = simulatorClientPolicy({
        tee: "sim-snp",
        measurement: "ab".repeat(48),
        operatorKey: (await generateManifestSigningKey()).publicJwk,
        modelSha256: "cd".repeat(32),
        serviceName: "test",
      });
      await writeFile(join(dir, "policy.json"), JSON.stringify(policy));
      const result = await run(["attest", "--url", "notaurl", "--policy", join(dir, "policy.json")], {
        CLOISTER_API_KEY: "k".repeat(32),
      });
      expect(result).toEqual({
        code: 2,
        stderr: 'cloister: BAD_URL: --url: expected an http(s) URL, found "notaurl"\n',
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

describe("stopWhenParentExits: npx does not pass signals on", () => {
  it("stops once the parent process changes, only under npm exec", async () => {
    let parent = 100;
    const stops: number[] = [];
    const cancel = stopWhenParentExits({
      env: { npm_command: "exec" },
      parentPid: () => parent,
      stop: () => stops.push(parent),
      intervalMs: 5,
    });
    expect(cancel).not.toBeNull();
    await new Promise((r) => setTimeout(r, 30));
    expect(stops).toEqual([]);
    parent = 1; // re-parented: the npx process is gone
    await new Promise((r) => setTimeout(r, 30));
    expect(stops).toEqual([1]);
    await new Promise((r) => setTimeout(r, 30));
    expect(stops).toEqual([1]); // once
    expect(stopWhenParentExits({ env: { npm_command: "test" }, parentPid: () => 1, stop: () => stops.push(0) })).toBe(
      null,
    );
    expect(stopWhenParentExits({ env: {}, parentPid: () => 1, stop: () => stops.push(0) })).toBe(null);
    // A supervised child (cloister up's) watches its supervisor, and is not told npx started it.
    const supervised = stopWhenParentExits({ env: { CLOISTER_SUPERVISED: "1" }, parentPid: () => 1, stop: () => {} });
    expect(supervised).not.toBeNull();
    supervised?.();
    // Re-parented before this was installed (`up` killed in the child's first second): the
    // supervisor bin/cloister.js found is watched, not the parent found now, so it stops.
    const orphaned: number[] = [];
    const watching = stopWhenParentExits({
      env: { CLOISTER_SUPERVISED: "1", CLOISTER_SUPERVISOR_PID: "4242" },
      parentPid: () => 1,
      stop: () => orphaned.push(1),
      intervalMs: 5,
    });
    await new Promise((r) => setTimeout(r, 30));
    expect(orphaned).toEqual([1]);
    watching?.();
    // Marked with this supervisor's pid, which the child checks is its parent's (bin/cloister.js).
    expect(childEnvironment({ npm_command: "exec", PATH: "/bin" })).toEqual({
      PATH: "/bin",
      CLOISTER_SUPERVISED: `supervisor-pid:${process.pid}`,
    });
  });
});

describe("ClientError.audit: the opening never reaches a log line", () => {
  it("is readable, but neither inspecting, stringifying nor spreading the error shows it", async () => {
    const { AuditReference, ClientError } = await import("../../client/errors.ts");
    const opening = "ab".repeat(32);
    const error = new ClientError("policy", "POLICY_BLOCKED", "enclave refused the request", {
      audit: new AuditReference("cd".repeat(32), opening),
    });
    expect(error.audit?.requestIdHash).toBe("cd".repeat(32));
    expect(error.audit?.opening).toBe(opening);
    const { inspect } = await import("node:util");
    expect(inspect(error, { depth: 5, showHidden: false })).not.toContain(opening);
    expect(JSON.stringify(error)).not.toContain(opening);
    expect(JSON.stringify({ ...error })).not.toContain(opening);
    expect(String(error)).not.toContain(opening);
    // Nor the reference itself, taken out of the error and logged on its own.
    expect(inspect(error.audit, { depth: 5 })).not.toContain(opening);
    expect(JSON.stringify(error.audit)).toBe(JSON.stringify({ requestIdHash: "cd".repeat(32) }));
    expect(JSON.stringify({ ...error.audit })).not.toContain(opening);
    expect(Object.keys(error.audit ?? {})).toEqual(["requestIdHash"]);
  });
});

describe("readOptionFile", () => {
  it("names the option, the file, the errno code and what to do", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cloister-option-file-"));
    try {
      const file = join(dir, "policy.json");
      await writeFile(file, "x");
      const refusal = (path: string): Promise<Error> =>
        readOptionFile(path, "--policy", { bytes: 1, expected: "x" }).then(
          () => new Error("expected a refusal"),
          (e: unknown) => e as Error,
        );
      expect((await refusal(join(dir, "none.json"))).message).toBe(
        `--policy ${join(dir, "none.json")}: cannot read (ENOENT: no such file; check the path)`,
      );
      expect((await refusal(dir)).message).toBe(
        `--policy ${dir}: expected a regular file or a pipe, found a directory`,
      );
      expect((await refusal(join(file, "x"))).message).toBe(
        `--policy ${join(file, "x")}: cannot read (ENOTDIR: a part of the path is a file, not a directory; check the path)`,
      );
      expect(await readOptionFile(file, "--policy", { bytes: 1, expected: "x" })).toBe("x");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("fileErrorCause", () => {
  it("words its hint for the operation that failed: reading a file, or writing one", () => {
    const error = (code: string) => Object.assign(new Error(code), { code });
    expect(fileErrorCause(error("EACCES"))).toBe("EACCES: this user may not read it; check its owner and mode");
    expect(fileErrorCause(error("EACCES"), "read")).toBe(fileErrorCause(error("EACCES")));
    expect(fileErrorCause(error("EACCES"), "write")).toBe(
      "EACCES: this user may not write there; check the directory's owner and mode",
    );
    expect(fileErrorCause(error("EPERM"), "write")).toBe(
      "EPERM: this user may not write there; check the directory's owner and mode",
    );
    expect(fileErrorCause(error("ENOENT"), "write")).toBe("ENOENT: no such directory; check the path");
    expect(fileErrorCause(error("EROFS"), "write")).toBe("EROFS: a read-only file system; choose another place");
    // The hints that hold for both are the same.
    for (const code of ["EISDIR", "ELOOP", "ENOTDIR", "EIO"]) {
      expect(fileErrorCause(error(code), "write"), code).toBe(fileErrorCause(error(code), "read"));
    }
  });
});

describe("fileErrorCause of an error with no errno code", () => {
  it("names the error's kind, never its message (which may quote what was read), for every operation", () => {
    // A SyntaxError's message quotes the text it could not parse: none of it is said.
    const quoting = new SyntaxError("Unexpected token 's', \"secret-key-text\" is not valid JSON");
    const cases: [unknown, string][] = [
      [new RangeError("Array buffer allocation failed"), "RangeError, with no error code"],
      [quoting, "SyntaxError, with no error code"],
      [new DOMException("This operation was aborted", "AbortError"), "AbortError, with no error code"],
      // A code that is no errno or Node.js code (a DOMException's number, a text) is not one.
      [Object.assign(new Error("x"), { code: "not a code: secret" }), "Error, with no error code"],
      [Object.assign(new Error("x"), { name: "Bad name: secret" }), "an error with no error code"],
      ["a thrown string: secret", "an error with no error code"],
      [null, "an error with no error code"],
    ];
    for (const [error, expected] of cases) {
      for (const operation of ["read", "write", "check"] as const) {
        expect(fileErrorCause(error, operation), `${String(error)} ${operation}`).toBe(expected);
      }
    }
    // A Node.js code that is no errno is said as it is.
    expect(fileErrorCause(Object.assign(new TypeError("x"), { code: "ERR_INVALID_ARG_TYPE" }))).toBe(
      "ERR_INVALID_ARG_TYPE",
    );
  });
});

describe("readBoundedFile", () => {
  it("refuses a file it cannot read, by default, naming the option, the file and why, with the fs error as the cause", async () => {
    const missing = join(tmpdir(), "cloister-no-such-dir", "none.json");
    const error = await readBoundedFile(missing, "--log", { bytes: 1, expected: "x" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UsageError);
    // Why as every other reader says it (fileErrorCause): the code and what to do, not Node's text,
    // which names the path again and the system call.
    expect((error as UsageError).message).toBe(`--log ${missing}: cannot read (ENOENT: no such file; check the path)`);
    expect((error as UsageError).cause).toMatchObject({ code: "ENOENT" });
  });
});

describe("listenUsageError, loopbackListenError", () => {
  it("each usage error they make keeps the ListenError it stands for as its cause", () => {
    const failed = (hostname: string, port: number, code: string) =>
      new ListenError(hostname, port, Object.assign(new Error(code), { code }));
    const cases: [unknown, ListenError][] = [];
    for (const error of [
      failed("127.0.0.1", 47001, "EADDRINUSE"),
      failed("no-such-host.invalid", 47001, "ENOTFOUND"),
      failed("192.0.2.1", 47001, "EADDRNOTAVAIL"),
      failed("::1", 47001, "EAFNOSUPPORT"),
    ]) {
      cases.push([listenUsageError(error), error]);
    }
    const ipv6 = failed("::1", 47001, "EADDRINUSE");
    cases.push([loopbackListenError(ipv6), ipv6]);
    for (const [usage, error] of cases) {
      expect(usage, error.code).toBeInstanceOf(UsageError);
      expect((usage as UsageError).cause, error.code).toBe(error);
    }
  });

  it("each usage error they make ends with the help hint every other command-line refusal ends with", () => {
    const failed = (hostname: string, port: number, code: string) =>
      new ListenError(hostname, port, Object.assign(new Error(code), { code }));
    const made = [
      listenUsageError(failed("127.0.0.1", 47001, "EADDRINUSE")),
      listenUsageError(failed("0.0.0.0", 80, "EACCES")),
      listenUsageError(failed("no-such-host.invalid", 47001, "ENOTFOUND")),
      listenUsageError(failed("192.0.2.1", 47001, "EADDRNOTAVAIL")),
      listenUsageError(failed("::1", 47001, "EAFNOSUPPORT")),
      loopbackListenError(failed("::1", 47001, "EADDRINUSE")),
      loopbackListenError(failed("127.0.0.1", 47001, "EADDRINUSE")),
    ];
    for (const usage of made) {
      expect(usage).toBeInstanceOf(UsageError);
      const message = (usage as UsageError).message;
      expect(message.endsWith(" (run with --help for usage)"), message).toBe(true);
      // Once: not added twice on the way.
      expect(message.split("(run with --help for usage)"), message).toHaveLength(2);
    }
  });
});

describe("loopbackListenError: [::1] failing with another code than EADDRINUSE", () => {
  it("is not said to be held by another process: EACCES as the port's refusal, any other code returned as it is", () => {
    const failed = (code: string) => new ListenError("::1", 47001, Object.assign(new Error(code), { code }));
    const denied = loopbackListenError(failed("EACCES"));
    expect(denied).toBeInstanceOf(UsageError);
    expect((denied as UsageError).message).toBe(
      "--port 47001: cannot listen on [::1] (EACCES) (run with --help for usage)",
    );
    // Not the port's fault (no more file descriptors): no usage error, and nothing of another process.
    const exhausted = failed("EMFILE");
    expect(loopbackListenError(exhausted)).toBe(exhausted);
  });
});

describe("timeOption (--at)", () => {
  const at = timeOption("--at");
  const refusal = (value: string): string => {
    try {
      at(value);
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidArgumentError);
      return (error as Error).message;
    }
    throw new Error(`expected ${value} to be refused`);
  };
  const expected = "--at: expected an ISO-8601 UTC time, YYYY-MM-DDTHH:MM:SSZ or YYYY-MM-DDTHH:MM:SS.sssZ";

  it("takes an ISO-8601 UTC time, with or without milliseconds", () => {
    expect(at("2026-02-28T23:59:59Z").toISOString()).toBe("2026-02-28T23:59:59.000Z");
    expect(at("2024-02-29T12:00:00.250Z").toISOString()).toBe("2024-02-29T12:00:00.250Z");
  });

  it("refuses a date that does not exist rather than rolling it over", () => {
    expect(refusal("2026-02-30T00:00:00Z")).toBe(`${expected}, found "2026-02-30T00:00:00Z" (no such date or time)`);
    expect(refusal("2025-02-29T00:00:00Z")).toBe(`${expected}, found "2025-02-29T00:00:00Z" (no such date or time)`);
    expect(refusal("2026-04-31T00:00:00Z")).toBe(`${expected}, found "2026-04-31T00:00:00Z" (no such date or time)`);
    expect(refusal("2026-01-01T24:00:00Z")).toBe(`${expected}, found "2026-01-01T24:00:00Z" (no such date or time)`);
    expect(refusal("2026-01-01T23:60:00Z")).toBe(`${expected}, found "2026-01-01T23:60:00Z" (no such date or time)`);
  });

  it("refuses other forms: a local time, an offset, a date alone, anything Date would guess at", () => {
    for (const value of [
      "2026-01-01T00:00:00",
      "2026-01-01T00:00:00+01:00",
      "2026-01-01",
      "2026-01-01 00:00:00Z",
      "2026-01-01T00:00Z",
      "2026-01-01T00:00:00.5Z",
      "2026-01-01T00:00:00z",
      "1 March 2026",
      "1767225600000",
      "",
    ]) {
      expect(refusal(value)).toBe(`${expected}, found ${JSON.stringify(value)}`);
    }
  });
});

describe("printJson", () => {
  it("writes invisible characters of what it prints as \\u escapes: the same JSON value, nothing for a terminal to act on", () => {
    const value = { name: "model\u202egguf.exe", note: "a\u0085b\u2028c", plain: "é ü 🙂" };
    const written: string[] = [];
    const write = process.stdout.write;
    process.stdout.write = ((chunk: string) => {
      written.push(chunk);
      return true;
    }) as typeof process.stdout.write;
    try {
      printJson(value);
    } finally {
      process.stdout.write = write;
    }
    const text = written.join("");
    expect(text).not.toMatch(/[\u202e\u0085\u2028]/);
    expect(text).toContain("\\u202e");
    expect(JSON.parse(text)).toEqual(value);
  });
});
