/**
 * `npm start` is `cloister demo`: the main job of a fresh clone. Run it as a new user would (its own
 * process, a fresh directory) and check what it promises: it verifies before sending anything,
 * streams the tiny model's exact greedy answer through the default frame pacing, verifies the
 * host-stored audit chain, shuts everything down and exits 0.
 */
import { execFile, spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { childrenOf, isRunning, modelCopiesOf } from "../helpers/processes.ts";

const CLI = fileURLToPath(new URL("../../bin/cloister.js", import.meta.url));
const README = fileURLToPath(new URL("../../README.md", import.meta.url));
const GREEDY_CHAT_ANSWER =
  " The host only forwards sealed bytes and the enclave keeps every prompt private inside a confidential virtual machine.";

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** Runs `cloister demo` on `dir` with `env` and, given one, `umask` (set by a shell that then execs node). */
function demo(
  dir: string,
  env = process.env,
  umask?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const command = [process.execPath, CLI, "demo", "--dir", dir, "--threads", "1"];
  const [file, ...argv] =
    umask === undefined ? command : ["/bin/sh", "-c", `umask ${umask} && exec "$0" "$@"`, ...command];
  return new Promise((resolve) => {
    execFile(file as string, argv, { timeout: 90_000, env }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

describe("cloister demo (npm start)", () => {
  it("verifies, answers through the paced sealed stream, checks the audit chain, and exits 0", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cloister-demo-"));
    dirs.push(dir);
    const result = await demo(dir);
    expect(result.code, result.stderr).toBe(0);
    // stderr carries progress only: no error line, and never the answer.
    expect(result.stderr).not.toMatch(/^cloister: /m);
    expect(result.stderr).not.toContain("confidential virtual machine");
    const verified = result.stdout.indexOf("Verified the enclave before sending anything");
    const asked = result.stdout.indexOf("> What does the enclave do?");
    expect(verified).toBeGreaterThanOrEqual(0);
    expect(asked).toBeGreaterThan(verified);
    expect(result.stdout).toContain("SIMULATED");
    // The model is sealed at rest: the attested manifest says so, and the key broker released its
    // key to this enclave after verifying it; what lies on disk for the host is ciphertext.
    expect(result.stdout).toContain('(sealed at rest under key "cloister-dev-tiny"');
    expect(result.stdout).toMatch(
      /key broker {3}released model key "cloister-dev-tiny" to this boot only after verifying/,
    );
    const sealed = await readFile(join(dir, "models", "tiny.gguf.sealed"));
    expect(sealed.subarray(0, 8).toString("latin1")).toBe("CLSEALMD");
    expect(sealed.includes(Buffer.from("general.architecture"))).toBe(false);
    // Only the sealed file is left on disk (the plaintext existed while it was sealed).
    expect((await readdir(join(dir, "models"))).sort()).toEqual(["tiny.gguf.sealed"]);
    expect(result.stdout).toContain(`${GREEDY_CHAT_ANSWER}\n`);
    expect(result.stdout).toMatch(/sealed end to end: \d+ prompt \+ 19 completion tokens/);
    expect(result.stdout).toMatch(
      /audit: 1 record stored by the host .*signatures, chain and completeness verified against a fresh checkpoint/,
    );
    expect(result.stdout).toMatch(/demo finished in [\d.]+ s/);
    // It ends on what to do next, not on the time alone.
    expect(result.stdout).toMatch(/demo finished in [\d.]+ s\nnext: keep a deployment running with `npx cloister up`/);
    // The host stored the enclave's signed records under the deployment directory.
    expect((await readdir(join(dir, "audit"))).some((f) => f.endsWith(".jsonl"))).toBe(true);
    // The README's sample is what it prints, line for line, up to the values that differ per build,
    // seal, boot and run (hashes and keys, shortened there; numbers; the deployment directory).
    expect(shape(result.stdout)).toEqual(shape(readmeSample(await readFile(README, "utf8"))));
  }, 120_000);
});

describe("cloister demo (npm start) under umask 002", () => {
  it("boots (its key broker accepts the files it wrote), answers and exits 0", async () => {
    // Many Linux users' default: the key broker refused the configuration the demo wrote under it as
    // group-writable, and the demo stopped before the enclave started.
    const dir = await mkdtemp(join(tmpdir(), "cloister-demo-umask-"));
    dirs.push(dir);
    const result = await demo(dir, process.env, "002");
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/key broker {3}released model key "cloister-dev-tiny" to this boot/);
    expect(result.stdout).toContain(`${GREEDY_CHAT_ANSWER}\n`);
  }, 120_000);
});

describe("cloister demo, its enclave unable to remove its model copy", () => {
  it("exits 1 and says which child failed as it stopped, with its last line", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cloister-demo-copy-left-"));
    dirs.push(dir);
    // Every process of the demo (it and its children, which inherit NODE_OPTIONS) fails to remove a
    // model copy: only the enclave makes one.
    const failRemoval = fileURLToPath(new URL("../helpers/fail-model-copy-removal.mjs", import.meta.url));
    const env = { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --import ${failRemoval}` };
    const result = await demo(dir, env);
    const copy = /could not remove the model copy (\S+) \(EBUSY\)/.exec(result.stderr)?.[1];
    if (copy !== undefined) await rm(copy, { recursive: true, force: true });
    expect(result.stdout, result.stderr).toMatch(/demo finished in [\d.]+ s/);
    expect(copy, result.stderr).toMatch(/cloister-model-/);
    expect(result.code).toBe(1);
    expect(result.stderr.split("\n").at(-2)).toBe(
      `enclave failed as it stopped (exit code 1): cloister enclave: stopped; could not remove the model copy ${copy} (EBUSY): remove it by hand`,
    );
  }, 120_000);

  it("on Ctrl-C while it boots, stops what it started before it exits (130), leaving no model copy", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cloister-demo-ctrlc-"));
    dirs.push(dir);
    // Its own process group, as a terminal's foreground job, which Ctrl-C signals as a whole.
    const child = spawn(process.execPath, [CLI, "demo", "--dir", dir, "--threads", "1"], { detached: true });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const closed = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
      child.once("close", (code, signal) => resolve({ code, signal })),
    );
    // Mid-boot: the enclave decrypts and loads the model into its private copy.
    let enclave: number | undefined;
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && child.exitCode === null) {
      enclave ??= (await childrenOf(child.pid as number)).find(({ command }) => command === "enclave")?.pid;
      if (enclave !== undefined && (await modelCopiesOf(enclave)).length > 0) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(await modelCopiesOf(enclave as number), stderr).toHaveLength(1);
    const started = await childrenOf(child.pid as number);
    process.kill(-(child.pid as number), "SIGINT");
    const run = await closed;
    // Every child is gone when it exits, not some time after it (they stopped on their own once it
    // had died of the signal, the enclave seconds later, its decrypted copy there until then).
    const running = started.filter(({ pid }) => isRunning(pid));
    const left = await modelCopiesOf(enclave as number);
    for (const path of left) await rm(path, { recursive: true, force: true });
    expect({ ...run, running, left }, stderr).toEqual({ code: 130, signal: null, running: [], left: [] });
    expect(stderr).toMatch(
      /shutting down \(SIGINT during boot\) …\n(.|\n)*stopped: every process it started has exited\n$/,
    );
    expect(await readdir(join(dir, "models"))).toEqual(["tiny.gguf.sealed"]);
  }, 120_000);
});

/** The output block the README shows after "`npm start` (= `npx cloister demo`) prints …". */
function readmeSample(readme: string): string {
  const from = readme.indexOf("`npm start` (= `npx cloister demo`) prints");
  const open = readme.indexOf("```\n", from) + 4;
  return readme.slice(open, readme.indexOf("```\n", open));
}

/** Output lines without what differs between runs: hashes and keys (whole or cut with "…"), numbers, the audit directory. */
function shape(text: string): string[] {
  return text
    .trim()
    .split("\n")
    .map((line) =>
      line
        .replace(/[A-Za-z0-9_-]{16,}…?/g, "#")
        .replace(/\d+(\.\d+)*/g, "N")
        .replace(/stored by the host in \S+\/audit\//, "stored by the host in DIR/audit/"),
    );
}
