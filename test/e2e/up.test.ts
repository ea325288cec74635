/**
 * `cloister up` as a user runs it: it starts the key broker, the enclave and the host, says where
 * they are, serves attested answers, and on SIGTERM stops all three and exits 0. Started again on
 * the same directory, it writes the same client policy (the sealed model is kept), so a client
 * holding the policy from the first run verifies the second. Ctrl-C while it boots stops what has
 * started (each child it started is gone when it exits), and says so. Its key broker warns of
 * nothing in the policy `up` writes but the simulator, for either simulated TEE. An enclave that,
 * stopped (after its boot or during it), could not remove its model copy fails `up` (exit 1), which
 * repeats the enclave's line.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ownerTag, processOwner } from "../../models/process-owner.ts";
import { CLI, runCloister } from "../helpers/cli.ts";
import { childrenOf, isRunning, modelCopiesOf } from "../helpers/processes.ts";

const dirs: string[] = [];
const children: ChildProcess[] = [];
afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/**
 * Starts `cloister up` with `args` (after `--dir`), in its own process group when `detached` (as a
 * terminal's foreground job, which Ctrl-C signals as a whole), with `env` (default this process's,
 * which its children inherit) and, given one, `umask` (set by a shell that then execs node, as a
 * login shell sets it), collecting what it prints.
 */
function spawnUp(
  dir: string,
  args: readonly string[],
  {
    detached = false,
    env = process.env,
    umask,
  }: { detached?: boolean; env?: NodeJS.ProcessEnv; umask?: string | undefined } = {},
) {
  const command = [process.execPath, CLI, "up", "--dir", dir, "--threads", "1", ...args];
  const [file, ...argv] =
    umask === undefined ? command : ["/bin/sh", "-c", `umask ${umask} && exec "$0" "$@"`, ...command];
  const child = spawn(file as string, argv, { cwd: dir, detached, env });
  children.push(child);
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  // Once its output has ended too ("close"): at "exit", its last lines may not have been read yet.
  const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  /** Resolves once `done` holds of what it printed, it exited, or 60 s passed. */
  const until = async (done: (out: { stdout: string; stderr: string }) => boolean) => {
    const deadline = Date.now() + 60_000;
    while (!done({ stdout, stderr }) && child.exitCode === null && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  return { child, exited, until, output: () => ({ stdout, stderr }) };
}

/** Whether process `pid` has died: gone, or a zombie its parent has not waited for yet (Linux /proc). */
async function hasDied(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => null);
  // "pid (comm) state …": the state follows the last ")" (comm may hold one).
  return stat === null || stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
}

/** Starts `cloister up` on free ports (under `umask`, if given); resolves with its host URL once it says it is up. */
async function up(dir: string, umask?: string) {
  const started = spawnUp(dir, ["--host-port", "0", "--enclave-port", "0", "--kbs-port", "0"], { umask });
  await started.until(({ stdout }) => stdout.includes("Stop with Ctrl-C."));
  const { stdout, stderr } = started.output();
  const url = /host URL {5}(http:\/\/127\.0\.0\.1:\d+)/.exec(stdout)?.[1];
  if (url === undefined) throw new Error(`cloister up did not come up: ${stdout}\n${stderr}`);
  return { ...started, url };
}

describe("cloister up", () => {
  it("serves attested answers, stops everything on SIGTERM, and keeps its policy across a restart", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cloister-up-"));
    dirs.push(dir);
    const first = await up(dir);
    const policyPath = join(dir, "policy.json");
    const connection = (url: string) => ["--url", url, "--policy", policyPath, "--api-key-file", join(dir, "api-key")];
    const firstPolicy = await readFile(policyPath, "utf8");
    expect(first.output().stdout).toMatch(/Cloister is up \(SIMULATED sim-snp/);
    expect(first.output().stderr).toContain("sealing it");
    // The commands it suggests work as printed, from where it was started (--dir is not .cloister).
    const suggested = /Try: {2}npx cloister (attest [^\n]+)/.exec(first.output().stdout)?.[1] ?? "";
    expect(suggested).toBe(`attest --url ${first.url} --policy policy.json --api-key-file api-key`);
    const printed = await runCloister(suggested.split(" "), { cwd: dir });
    expect(printed.code, printed.stderr).toBe(0);
    const chat = await runCloister(["chat", ...connection(first.url), "--max-tokens", "4", "Hello"], { cwd: dir });
    expect(chat.code).toBe(0);
    expect(chat.stdout.length).toBeGreaterThan(0);

    first.child.kill("SIGTERM");
    expect(await first.exited).toBe(0);
    expect(first.output().stderr).toContain("shutting down (SIGTERM)");
    expect(first.output().stderr).toContain("stopped: every process it started has exited");
    // Nothing listens at the old address any more.
    const gone = await runCloister(["attest", ...connection(first.url)], { cwd: dir });
    expect(gone.code).not.toBe(0);
    expect(gone.stderr).toContain("cannot reach the host");

    const second = await up(dir);
    try {
      expect(await readFile(policyPath, "utf8")).toBe(firstPolicy);
      expect(second.output().stderr).not.toContain("sealing it");
      const attest = await runCloister(["attest", ...connection(second.url), "--json"], { cwd: dir });
      expect(attest.code).toBe(0);
      expect(JSON.parse(attest.stdout)).toMatchObject({ simulated: true });
    } finally {
      second.child.kill("SIGTERM");
    }
    expect(await second.exited).toBe(0);
    // Two whole boots (broker, enclave, host), an attest and a chat: 37-40 s on two cores (alone, and
    // in a full test run), past the default 60 s when the cores are shared with other work.
  }, 180_000);

  it("boots under umask 002 (many Linux users' default): its key broker accepts the files up wrote", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cloister-up-umask-"));
    dirs.push(dir);
    // The key broker refused its configuration, written group-writable under this umask, and up
    // stopped before the enclave started.
    const started = await up(dir, "002");
    try {
      expect(started.output().stderr).toContain('[kbs] {"event":"release","outcome":"released"');
      const connection = ["--url", started.url, "--policy", "policy.json", "--api-key-file", "api-key"];
      const attest = await runCloister(["attest", ...connection, "--json"], { cwd: dir });
      expect(attest.code, attest.stderr).toBe(0);
      expect(JSON.parse(attest.stdout)).toMatchObject({ simulated: true });
    } finally {
      started.child.kill("SIGTERM");
    }
    expect(await started.exited).toBe(0);
  });

  it("stops what has started, and says so, on Ctrl-C during boot: a requested stop, exit 0 as after boot", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cloister-up-ctrlc-"));
    dirs.push(dir);
    // Ports the system chooses (0): a fixed port someone else holds would stop `up` before the test.
    // Simulated TDX here (SEV-SNP above), so both simulators boot under `up`.
    const args = ["--tee", "sim-tdx", "--host-port", "0", "--enclave-port", "0", "--kbs-port", "0"];
    // Ctrl-C is SIGINT to the whole process group, children included (they ignore it and wait
    // for `up` to stop them).
    const { child, exited, until, output } = spawnUp(dir, args, { detached: true });
    // The key broker released the model key to the enclave, which is now decrypting and loading the
    // model: mid-boot, with the key broker and the enclave running and the host not yet started.
    await until(({ stderr }) => stderr.includes('[kbs] {"event":"release"'));
    expect(output().stderr, output().stdout).toContain('[kbs] {"event":"release","outcome":"released"');
    // The release policy `up` writes pins what the simulated TD reports: the key broker warns only
    // that it trusts the simulator (no TDX check skipped or left open).
    expect(
      output()
        .stderr.split("\n")
        .filter((line) => line.includes("WARNING")),
    ).toEqual([
      '[kbs] cloister kbs: WARNING: key "cloister-dev-tiny": trusts the INSECURE simulator: anyone can forge its evidence',
    ]);
    const started = await childrenOf(child.pid as number);
    // The key broker first, then the enclave.
    expect(started.map(({ command }) => command).slice(0, 2)).toEqual(["kbs", "enclave"]);
    // Its private copy of the model (the decrypted weights) exists from the decryption on.
    const enclave = started[1]?.pid as number;
    for (let i = 0; i < 1500 && (await modelCopiesOf(enclave)).length === 0 && isRunning(enclave); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(await modelCopiesOf(enclave)).toHaveLength(1);
    expect(output().stdout).not.toContain("Cloister is up");
    process.kill(-(child.pid as number), "SIGINT");
    // A clean shutdown the user asked for, whether or not the boot had ended (as SIGTERM above).
    expect(await exited, output().stderr).toBe(0);
    const { stdout, stderr } = output();
    expect(stdout).not.toContain("Cloister is up");
    expect(stderr).toContain("shutting down (SIGINT during boot) …");
    expect(stderr).toMatch(
      /shutting down \(SIGINT during boot\) …\n(.|\n)*stopped: every process it started has exited\n$/,
    );
    // Every child it had started is gone when it exits, not some time later.
    const running = started.filter(({ pid }) => isRunning(pid));
    expect(running, "children still running after up exited").toEqual([]);
    // The enclave, stopped while it decrypted and loaded the model, removed its private copy: it
    // ignored the terminal's SIGINT and stopped cleanly on up's SIGTERM.
    const left = await modelCopiesOf(enclave);
    for (const path of left) await rm(path, { recursive: true, force: true });
    expect(left, "model copies the enclave left").toEqual([]);
    expect(stderr).toMatch(
      /\[enclave\] cloister enclave: shutting down \(SIGTERM during boot\) …\n(.|\n)*\[enclave\] cloister enclave: stopped before serving; no copy of the model is left\n/,
    );
  });

  it("stops its children in order on Ctrl-C under `up 2>&1 | tee log`, though the Ctrl-C ends the reader of its output too", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cloister-up-tee-"));
    dirs.push(dir);
    const args = ["--no-sealed-model", "--host-port", "0", "--enclave-port", "0"];
    const { child, until, output } = spawnUp(dir, args, { detached: true });
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    await until(({ stdout }) => stdout.includes("Stop with Ctrl-C."));
    expect(output().stdout, output().stderr).toContain("Stop with Ctrl-C.");
    const started = await childrenOf(child.pid as number);
    expect(started.map(({ command }) => command)).toEqual(["enclave", "host"]);
    // The terminal's Ctrl-C reaches tee as well as up (one process group): tee is gone, and every
    // line up writes from then on meets a closed pipe (EPIPE). Up is idle meanwhile: its first such
    // line is the one it writes as it handles the Ctrl-C. That EPIPE exited at once (141), leaving
    // its children to stop on their own after it had gone.
    child.stdout.destroy();
    child.stderr.destroy();
    process.kill(-(child.pid as number), "SIGINT");
    const code = await exited;
    // Every child it had started is gone when it exits: it stopped them (host, then the enclave).
    const running = started.filter(({ pid }) => isRunning(pid));
    expect({ code, running }).toEqual({ code: 0, running: [] });
  });

  it("counts a child a stop killed before the child handled signals as stopped (exit 0), unless a model copy of it is there", async () => {
    // Each child it starts waits before node runs bin/cloister.js (it has no signal handler yet), or,
    // held after bin/cloister.js's first lines, before it loads its command: a stop in up's first
    // moments. SIGTERM is sent to up alone (as `kill PID` does); SIGINT to its whole process group,
    // as a terminal's Ctrl-C is, so the waiting child gets it too: after bin/cloister.js's first
    // lines it ignores it; before, node's own startup handler of SIGINT and SIGTERM (it resets the
    // terminal, then raises the signal again) kills it. That handler takes both at once, so the
    // Ctrl-C's SIGINT and the SIGTERM up sends as it handles its own race (under load up's may kill
    // the child first): the line names the one that killed it.
    const helper = (name: string) => join(import.meta.dirname, "..", "helpers", name);
    const cases = [
      { stop: "SIGTERM", hook: "delay-supervised-start.mjs", held: "enclave", leaveCopy: false },
      { stop: "SIGTERM", hook: "delay-supervised-start.mjs", held: "enclave", leaveCopy: true },
      { stop: "SIGINT", hook: "delay-supervised-start.mjs", held: "enclave", leaveCopy: false },
      { stop: "SIGINT", hook: "delay-supervised-start.mjs", held: "enclave", leaveCopy: true },
      { stop: "SIGINT", hook: "delay-supervised-start.mjs", held: "kbs", leaveCopy: false },
      { stop: "SIGINT", hook: "delay-supervised-command.mjs", held: "kbs", leaveCopy: false },
      // The child's death seen before up's own SIGINT is handled (the two arrive at once; under
      // load either may be handled first): sent to the child, then to the group once it has died.
      { stop: "SIGINT", hook: "delay-supervised-start.mjs", held: "kbs", leaveCopy: false, childFirst: true },
      { stop: "SIGINT", hook: "delay-supervised-start.mjs", held: "enclave", leaveCopy: true, childFirst: true },
    ] as const;
    for (const testCase of cases) {
      const { stop, hook, held, leaveCopy } = testCase;
      const childFirst = "childFirst" in testCase;
      const env = { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --import ${helper(hook)}` };
      // The key broker runs only for a sealed model; without one, the enclave is the first child.
      const args = [...(held === "kbs" ? ["--kbs-port", "0"] : ["--no-sealed-model"]), "--host-port", "0"];
      const dir = await mkdtemp(join(tmpdir(), "cloister-up-early-stop-"));
      dirs.push(dir);
      const { child, exited, until, output } = spawnUp(dir, [...args, "--enclave-port", "0"], {
        env,
        detached: stop === "SIGINT",
      });
      const what = `${stop} while ${held} waits (${hook}${leaveCopy ? ", a copy named for it" : ""}${childFirst ? ", the child's first" : ""})`;
      let waiting: number | undefined;
      await until(() => {
        void childrenOf(child.pid as number).then((found) => {
          waiting ??= found.find(({ command }) => command === held)?.pid;
        });
        return waiting !== undefined;
      });
      expect(waiting, `${what}: ${output().stderr}`).toBeDefined();
      if (hook === "delay-supervised-command.mjs") {
        await until(({ stderr }) => stderr.includes("held before its command"));
      }
      // A copy named for the child's process (its pid, start time and pid namespace, read while it
      // runs), as it would have made one (it cannot have: it makes one only after it handles
      // signals): up checks, it does not assume. A file: only its name is looked at, and another
      // test's staging removes the copy directories of processes that have ended that it finds.
      const copy = join(tmpdir(), `cloister-model-${ownerTag(await processOwner(waiting as number))}-AbCdEf`);
      if (leaveCopy) await writeFile(copy, "");
      try {
        if (childFirst) {
          process.kill(waiting as number, "SIGINT");
          for (let i = 0; i < 3000 && !(await hasDied(waiting as number)); i++)
            await new Promise((r) => setTimeout(r, 20));
          expect(await hasDied(waiting as number), what).toBe(true);
        }
        if (stop === "SIGINT") process.kill(-(child.pid as number), "SIGINT");
        else child.kill("SIGTERM");
        const code = await exited;
        const lines = output().stderr.split("\n");
        expect(lines.at(-2), what).toBe("stopped: every process it started has exited");
        expect(isRunning(waiting as number), what).toBe(false);
        if (leaveCopy) {
          // The Ctrl-C to the group, unless the child had died of it first: it or up's SIGTERM killed it.
          const killers = stop === "SIGINT" && !childFirst ? ["SIGINT", "SIGTERM"] : [stop];
          const failed = (signal: string) =>
            `${held} failed as it stopped (${signal} before it handled signals, leaving the model copy ${copy}: remove it by hand)`;
          expect(killers.map(failed), what).toContain(lines.at(-3));
          expect(code, what).toBe(1);
        } else {
          expect(output().stderr, what).not.toContain("failed as it stopped");
          expect(code, what).toBe(0);
          // Nothing left behind: no model copy of the child, and of the model only the file up keeps
          // (its plaintext, made to seal it, is removed).
          expect(await modelCopiesOf(waiting as number), what).toEqual([]);
          expect(await readdir(join(dir, "models")), what).toEqual([held === "kbs" ? "tiny.gguf.sealed" : "tiny.gguf"]);
        }
      } finally {
        await rm(copy, { recursive: true, force: true });
      }
    }
  });

  it("says the first Ctrl-C while it stops because the host exited, and how to exit at once", async () => {
    // The enclave is frozen (SIGSTOP) before the host is killed: up's stop of it waits until the
    // test lets it go on (SIGCONT), so the Ctrl-C comes while up stops it, in the test's order.
    const dir = await mkdtemp(join(tmpdir(), "cloister-up-host-exited-"));
    dirs.push(dir);
    const args = ["--no-sealed-model", "--host-port", "0", "--enclave-port", "0"];
    const { child, exited, until, output } = spawnUp(dir, args);
    await until(({ stdout }) => stdout.includes("Stop with Ctrl-C."));
    expect(output().stdout, output().stderr).toContain("Stop with Ctrl-C.");
    const started = await childrenOf(child.pid as number);
    const pidOf = (name: string) => started.find(({ command }) => command === name)?.pid as number;
    process.kill(pidOf("enclave"), "SIGSTOP");
    try {
      process.kill(pidOf("host"), "SIGKILL");
      await until(({ stderr }) => stderr.includes("shutting down (host exited) …"));
      child.kill("SIGINT");
      await until(({ stderr }) => stderr.includes("SIGINT while stopping"));
    } finally {
      process.kill(pidOf("enclave"), "SIGCONT");
    }
    expect(await exited).toBe(1);
    const lines = output().stderr.split("\n");
    expect(lines).toContain("SIGINT while stopping (host exited): Ctrl-C again to exit at once");
    expect(lines.at(-2)).toBe("stopped: every process it started has exited");
  }, 180_000);

  it("exits 1 when the enclave, stopped, could not remove its model copy, and says so with the enclave's line", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cloister-up-copy-left-"));
    dirs.push(dir);
    // Every process of the deployment (up and its children, which inherit NODE_OPTIONS) fails to
    // remove a model copy: only the enclave makes one.
    const failRemoval = join(import.meta.dirname, "..", "helpers", "fail-model-copy-removal.mjs");
    const env = { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --import ${failRemoval}` };
    const args = ["--no-sealed-model", "--host-port", "0", "--enclave-port", "0"];
    const { child, exited, until, output } = spawnUp(dir, args, { env });
    await until(({ stdout }) => stdout.includes("Stop with Ctrl-C."));
    expect(output().stdout, output().stderr).toContain("Stop with Ctrl-C.");
    const enclave = (await childrenOf(child.pid as number)).find(({ command }) => command === "enclave")?.pid as number;
    child.kill("SIGTERM");
    const code = await exited;
    const left = await modelCopiesOf(enclave);
    for (const path of left) await rm(path, { recursive: true, force: true });
    expect(left).toHaveLength(1);
    expect(code).toBe(1);
    const lines = output().stderr.split("\n");
    const said = `cloister enclave: stopped; could not remove the model copy ${left[0]} (EBUSY): remove it by hand`;
    expect(lines).toContain(`[enclave] ${said}`);
    expect(lines.at(-3)).toBe(`enclave failed as it stopped (exit code 1): ${said}`);
    expect(lines.at(-2)).toBe("stopped: every process it started has exited");
  });

  it("exits 1 when the enclave, stopped during boot, could not remove its model copy, and says so with the enclave's line", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cloister-up-boot-copy-left-"));
    dirs.push(dir);
    // As above: no process of the deployment can remove a model copy (only the enclave makes one).
    const failRemoval = join(import.meta.dirname, "..", "helpers", "fail-model-copy-removal.mjs");
    const env = { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --import ${failRemoval}` };
    const args = ["--host-port", "0", "--enclave-port", "0", "--kbs-port", "0"];
    const { child, exited, until, output } = spawnUp(dir, args, { env });
    // Mid-boot: the key broker released the model key, and the enclave decrypts and loads the model
    // into its private copy, which exists from the decryption on.
    await until(({ stderr }) => stderr.includes('[kbs] {"event":"release"'));
    const enclave = (await childrenOf(child.pid as number)).find(({ command }) => command === "enclave")?.pid as number;
    for (let i = 0; i < 1500 && (await modelCopiesOf(enclave)).length === 0 && isRunning(enclave); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(await modelCopiesOf(enclave), output().stderr).toHaveLength(1);
    child.kill("SIGTERM");
    const code = await exited;
    const left = await modelCopiesOf(enclave);
    for (const path of left) await rm(path, { recursive: true, force: true });
    const { stdout, stderr } = output();
    expect(stdout).not.toContain("Cloister is up");
    expect(left).toHaveLength(1);
    expect(code).toBe(1);
    const lines = stderr.split("\n");
    const said = `cloister enclave: stopped before serving; could not remove the model copy ${left[0]} (EBUSY): remove it by hand`;
    expect(lines).toContain(`[enclave] ${said}`);
    expect(lines.at(-3)).toBe(`enclave failed as it stopped (exit code 1): ${said}`);
    expect(lines.at(-2)).toBe("stopped: every process it started has exited");
  });
});
