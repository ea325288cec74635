/**
 * `cloister chat --max-tokens N` above what the enclave's manifest allows an answer
 * (inference.maxTokens, 256 in the dev manifest) is cut there by the enclave: the CLI, which read
 * that limit in the verified manifest, says so once on stderr, rather than let a short answer
 * read as the model's own end; and so does an interactive session, once more each time it moves to
 * a pool member whose manifest allows another number (re-attested: another enclave's key).
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { runChat } from "../../client/cli/run-client.ts";
import { connect } from "../../client/sdk.ts";
import { fetchTransport, type Transport } from "../../client/transport.ts";
import { listen } from "../../enclave/http.ts";
import { createEnclaveApp } from "../../enclave/server.ts";
import { bootWith, ScriptedEngine } from "../enclave/helpers.ts";
import { capture } from "../helpers/stops.ts";
import { testDirectory } from "../helpers/test-directory.ts";
import { closeServers, devPolicy, OK, serveDeployment, typeIntoPool } from "./helpers.ts";

const dir = await testDirectory("cloister-chat-max-tokens-");
let policy: string;
beforeAll(async () => {
  policy = join(dir, "policy.json");
  await writeFile(policy, JSON.stringify(await devPolicy()));
});
afterEach(async () => {
  await closeServers();
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
  process.exitCode = undefined;
});

const NOTICE =
  "cloister: note: --max-tokens 100000: the enclave's manifest allows at most 256 tokens an answer (inference.maxTokens): answers stop there\n";

/** runChat with `maxTokens`, a prompt, or (none) an interactive session of two lines on `input`. */
async function chat(maxTokens: number | undefined, prompt: string | undefined) {
  const { url } = await serveDeployment();
  vi.stubEnv("CLOISTER_API_KEY", "key");
  const written = capture();
  const lines = new PassThrough();
  lines.end("one\ntwo\n");
  const terminal = Object.assign(prompt === undefined ? lines : Readable.from([]), { isTTY: true });
  await runChat(prompt, { url, policy, ...(maxTokens === undefined ? {} : { maxTokens }) }, terminal);
  vi.restoreAllMocks();
  return { stdout: written.stdout.join(""), stderr: written.stderr.join("") };
}

describe("cloister chat --max-tokens above the manifest's inference.maxTokens", () => {
  it("says once on stderr that answers stop at the manifest's limit; the answer as ever", async () => {
    const { stdout, stderr } = await chat(100_000, "hello");
    expect(stdout).toBe("ok\n");
    // A note, not an error: said as the redaction note is (cloister: note: …).
    expect(stderr).toBe(NOTICE);
  });

  it("says it once in an interactive session, before the first turn", async () => {
    const { stderr } = await chat(100_000, undefined);
    expect(stderr.split(NOTICE)).toHaveLength(2);
    expect(stderr.indexOf(NOTICE)).toBeLessThan(stderr.indexOf("you> "));
  });

  it("says nothing at or below the limit, or without --max-tokens", async () => {
    for (const maxTokens of [256, 10, undefined]) {
      expect((await chat(maxTokens, "hello")).stderr, String(maxTokens)).toBe("");
    }
  });
});

describe("an interactive session that moves to another pool member", () => {
  /** Two enclaves of one pool (the dev manifest, inference.maxTokens `limits`), the host routing to `state.target`. */
  async function pool(limits: readonly number[]) {
    const urls: string[] = [];
    for (const maxTokens of limits) {
      const enclave = await bootWith(new ScriptedEngine(() => OK), 0, { inference: { maxTokens } });
      const server = await listen(createEnclaveApp(enclave).fetch, "127.0.0.1", 0);
      urls.push(server.url);
      after.push(() => server.close());
    }
    const state = { target: 0 };
    const inner = fetchTransport(fetch);
    const transport: Transport = (url, request) =>
      inner(`${urls[state.target]}${new URL(url).pathname.replace(/^\/v1\//, "/")}`, request);
    const session = await connect({ url: "http://pool.test", policy: await devPolicy(), apiKey: "unused", transport });
    return { session, state };
  }
  const after: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const close of after.splice(0)) await close();
  });

  /** The limit's notes of a session typed into (typeIntoPool): each move is said too (test/client/chat-pool-move.test.ts). */
  async function typed(
    session: Awaited<ReturnType<typeof pool>>["session"],
    state: { target: number },
    turns: [string, number][],
    maxTokens?: number,
  ) {
    const notices = await typeIntoPool(session, state, turns, maxTokens);
    return notices.replaceAll(/cloister: note: the session moved to another enclave[^\n]*\n/g, "");
  }

  const note = (asked: number, limit: number) =>
    `cloister: note: --max-tokens ${asked}: the enclave's manifest allows at most ${limit} tokens an answer (inference.maxTokens): answers stop there\n`;

  it("says so once per change of limit, after the answer of the turn that moved", async () => {
    const { session, state } = await pool([256, 64]);
    // Re-attested when the other member refuses the first one's key (WRONG_ENCLAVE_KEY).
    const notices = await typed(
      session,
      state,
      [
        ["one", 0],
        ["two", 1],
        ["three", 1],
        ["four", 0],
      ],
      100,
    );
    // 100 is within the first member's 256 (nothing said at the start), over the second's 64:
    // said once on the move there, nothing while it stays, nothing on the move back.
    expect(notices).toBe(note(100, 64));
    // It did move, and back.
    expect(session.enclave.manifest.manifest).toMatchObject({ inference: { maxTokens: 256 } });
  });

  it("a move back to a limit still under --max-tokens is a change too; without --max-tokens nothing is said", async () => {
    const moved = await pool([128, 64]);
    const turns: [string, number][] = [
      ["one", 1],
      ["two", 0],
      ["three", 0],
    ];
    expect(await typed(moved.session, moved.state, turns, 500)).toBe(`${note(500, 64)}${note(500, 128)}`);
    const quiet = await pool([128, 64]);
    expect(await typed(quiet.session, quiet.state, turns)).toBe("");
  });
});
