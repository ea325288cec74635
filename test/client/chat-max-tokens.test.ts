/**
 * `cloister chat --max-tokens N` above what the enclave's manifest allows an answer
 * (inference.maxTokens, 256 in the dev manifest) is cut there by the enclave: the CLI, which read
 * that limit in the verified manifest, says so once on stderr, rather than let a short answer
 * read as the model's own end.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { runChat } from "../../client/cli/run-client.ts";
import { capture } from "../helpers/stops.ts";
import { closeServers, devPolicy, serveDeployment } from "./helpers.ts";

let dir: string;
let policy: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cloister-chat-max-tokens-"));
  policy = join(dir, "policy.json");
  await writeFile(policy, JSON.stringify(await devPolicy()));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
afterEach(async () => {
  await closeServers();
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
  process.exitCode = undefined;
});

const NOTICE =
  "cloister: --max-tokens 100000: the enclave's manifest allows at most 256 tokens an answer (inference.maxTokens): answers stop there\n";

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
