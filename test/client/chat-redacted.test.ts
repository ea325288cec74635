/**
 * When the enclave's manifest redacts PII (the dev manifest: mode "redact", every entity) and it
 * replaced some in the prompt, the answer is to the redacted prompt: `cloister chat` says so on
 * stderr after the answer (kinds and counts, from the sealed final frame), `--json` has `redacted`,
 * and so does an interactive session, after the turn whose prompt was redacted. Nothing is said
 * when nothing was redacted.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { describe, expect, it, vi } from "vitest";
import { runChat } from "../../client/cli/run-client.ts";
import { redactionNote } from "../../client/redaction-note.ts";
import { capture } from "../helpers/stops.ts";
import { testDirectory } from "../helpers/test-directory.ts";
import { closeServers, devPolicy, serveDeployment } from "./helpers.ts";

const ONE_EMAIL =
  'cloister: note: the enclave redacted 1 email address from your prompt before the model saw it (manifest PII mode "redact")\n';

const dir = await testDirectory("cloister-chat-redacted-");
const policy = join(dir, "policy.json");
await writeFile(policy, JSON.stringify(await devPolicy()));

/**
 * runChat of `prompt`, or (undefined) an interactive session of `lines`, against a dev deployment
 * of its own, which it closes (with the environment and mocks it set) before it returns.
 */
async function chat(prompt: string | undefined, options: { json?: boolean; lines?: string } = {}) {
  try {
    const { url } = await serveDeployment();
    vi.stubEnv("CLOISTER_API_KEY", "key");
    const written = capture();
    const lines = new PassThrough();
    lines.end(options.lines ?? "");
    const terminal = Object.assign(prompt === undefined ? lines : Readable.from([]), { isTTY: true });
    await runChat(prompt, { url, policy, ...(options.json === true ? { json: true } : {}) }, terminal);
    return { stdout: written.stdout.join(""), stderr: written.stderr.join("") };
  } finally {
    vi.restoreAllMocks();
    vi.unstubAllEnvs();
    process.exitCode = undefined;
    await closeServers();
  }
}

describe("cloister chat, when the enclave redacted PII from the prompt", () => {
  it("says on stderr, after the answer, which kinds and how many; the answer as ever", async () => {
    const { stdout, stderr } = await chat("write to bob@example.org about it");
    expect(stdout).toBe("ok\n");
    expect(stderr).toBe(ONE_EMAIL);
  });

  it("says nothing when nothing was redacted", async () => {
    expect(await chat("write about the sea")).toEqual({ stdout: "ok\n", stderr: "" });
  });

  it("--json has redacted: the kinds with counts, or null", async () => {
    const redacted = await chat("mail bob@example.org or alice@example.com, or call +1 415 555 0100", { json: true });
    expect(JSON.parse(redacted.stdout)).toMatchObject({ text: "ok", redacted: { email: 2, phone: 1 } });
    expect(redacted.stderr).toBe("");
    const plain = await chat("write about the sea", { json: true });
    expect(JSON.parse(plain.stdout)).toMatchObject({ text: "ok", redacted: null });
  });

  it("says so in an interactive session after the turn whose prompt was redacted", async () => {
    const { stdout, stderr } = await chat(undefined, { lines: "hello\nmail bob@example.org\n" });
    expect(stdout).toBe("enclave> ok\nenclave> ok\n");
    // Not after the first turn (nothing redacted), once after the second.
    const turns = stderr.split("you> ");
    expect(turns).toHaveLength(4);
    expect(turns[1]).toBe("");
    expect(turns[2]).toBe(ONE_EMAIL);
  });
});

describe("redactionNote", () => {
  it("names each kind with its count, in the manifest's entity order, plural from 2", () => {
    expect(redactionNote(null)).toBeNull();
    expect(redactionNote({ phone: 2, secret_key: 1, email: 3 })).toBe(
      'the enclave redacted 3 email addresses, 2 phone numbers and 1 secret key from your prompt before the model saw it (manifest PII mode "redact")',
    );
  });
});
