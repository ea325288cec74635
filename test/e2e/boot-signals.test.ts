/**
 * `cloister enclave` and `cloister host` stopped while they boot, as real processes: SIGTERM during
 * boot is a clean stop, as after boot (exit 0, and a line saying so), never the signal's default
 * action. The enclave leaves no private model copy behind (for a sealed model, its decrypted
 * weights in /dev/shm), and a busy key broker's retries do not keep it running. A child of
 * `cloister up` ignores Ctrl-C from its first lines on, and only a child of up does; it stops on its
 * own once that up is gone, even when up was killed before the child had loaded its command, or before
 * its first lines ran (it then does not start).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer as createHttpServer } from "node:http";
import { createServer as createTcpServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DeploymentFiles, prepareDeployment } from "../../client/cli/deploy.ts";
import { CLI } from "../helpers/cli.ts";
import { modelCopiesOf } from "../helpers/processes.ts";

let dir: string;
let files: DeploymentFiles;
const children: ChildProcess[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cloister-boot-signals-"));
  files = await prepareDeployment({ dir, tee: "sim-snp", threads: 1, progress: () => {}, sealedModel: true });
});

afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  await rm(dir, { recursive: true, force: true });
});

/** Starts `cloister ARGS` (with `env`, default this process's), collecting what it prints. */
function start(args: readonly string[], env: NodeJS.ProcessEnv = process.env) {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
    child.once("close", (code, signal) => resolve({ code, signal }));
  });
  /** Resolves once `done` holds, or the process exited, or 60 s passed. */
  const until = async (done: () => boolean | Promise<boolean>) => {
    const deadline = Date.now() + 60_000;
    while (!(await done()) && child.exitCode === null && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  return { child, exited, until, output: () => ({ stdout, stderr }) };
}

const enclaveArgs = (kbsUrl: string) => [
  "enclave",
  "--manifest",
  files.manifestPath,
  "--operator-key",
  files.operatorPublicKeyPath,
  "--model",
  files.modelPath,
  "--tee",
  "sim-snp",
  "--port",
  "0",
  "--kbs-url",
  kbsUrl,
];

describe("cloister enclave: SIGTERM during boot", () => {
  it("while it decrypts and loads the sealed model: exit 0, says so, and no decrypted copy is left", async () => {
    const kbs = start(["kbs", "serve", "--config", files.kbs?.configPath as string, "--port", "0"]);
    try {
      await kbs.until(() => kbs.output().stdout.includes('"ready"'));
      const kbsUrl = (JSON.parse(kbs.output().stdout.split("\n")[0] as string) as { url: string }).url;
      const enclave = start(enclaveArgs(kbsUrl));
      const pid = enclave.child.pid as number;
      // The copy exists from the released key's decryption on: SIGTERM as soon as it appears falls
      // in the decryption or the load (llama.cpp's start takes far longer than a poll).
      await enclave.until(async () => (await modelCopiesOf(pid)).length > 0);
      expect(await modelCopiesOf(pid)).toHaveLength(1);
      enclave.child.kill("SIGTERM");
      const run = await enclave.exited;
      const left = await modelCopiesOf(pid);
      for (const path of left) await rm(path, { recursive: true, force: true });
      const { stdout, stderr } = enclave.output();
      expect({ ...run, left, ready: stdout.includes('"ready"') }, stderr).toEqual({
        code: 0,
        signal: null,
        left: [],
        ready: false,
      });
      expect(stderr).toMatch(
        /cloister enclave: shutting down \(SIGTERM during boot\) …\ncloister enclave: stopped before serving; no copy of the model is left\n$/,
      );
    } finally {
      kbs.child.kill("SIGTERM");
      await kbs.exited;
    }
  });

  it("while it waits to ask a busy key broker again: exit 0 at once, without asking again", async () => {
    // A broker that is always busy and says to come back in 30 s (the enclave asks again for 120 s).
    let asked = 0;
    const broker = createHttpServer((_request, response) => {
      asked++;
      response.writeHead(503, { "content-type": "application/json", "retry-after": "30" });
      response.end(JSON.stringify({ error: { code: "KBS_BUSY", message: "busy" } }));
    });
    await new Promise<void>((resolve) => broker.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = broker.address() as { port: number };
      const enclave = start(enclaveArgs(`http://127.0.0.1:${port}`));
      await enclave.until(() => enclave.output().stderr.includes("asking again in 30000 ms"));
      expect(enclave.output().stderr).toContain("asking again in 30000 ms");
      enclave.child.kill("SIGTERM");
      const run = await enclave.exited;
      const { stderr } = enclave.output();
      // One challenge asked for, none after the signal: the wait was abandoned, not sat out.
      expect({ ...run, asked }, stderr).toEqual({ code: 0, signal: null, asked: 1 });
      // What it says of the copy (checked, not assumed: run.ts), and nothing more: with the model key
      // never released, no copy was ever made, so a look for one left could not fail.
      expect(stderr).toContain("cloister enclave: stopped before serving; no copy of the model is left\n");
    } finally {
      broker.close();
    }
  });
});

describe("a child of cloister up (CLOISTER_SUPERVISED, naming this process): Ctrl-C before its command has loaded", () => {
  it("is ignored from bin/cloister.js's first lines on, as its command ignores it: up stops it", async () => {
    // Held after bin/cloister.js's first lines, before node loads its command (and with it the
    // command's signal handlers, a second or more after it starts). The terminal's Ctrl-C reaches
    // the whole process group, up's children too: by the signal's default action it killed them
    // there, and up took that for a child that failed as it stopped.
    const hold = join(import.meta.dirname, "..", "helpers", "delay-supervised-command.mjs");
    const env = {
      ...process.env,
      CLOISTER_SUPERVISED: `supervisor-pid:${process.pid}`,
      NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --import ${hold}`,
    };
    const kbs = start(["kbs", "serve", "--config", files.kbs?.configPath as string, "--port", "0"], env);
    await kbs.until(() => kbs.output().stderr.includes("held before its command"));
    expect(kbs.output().stderr).toBe("held before its command\n");
    kbs.child.kill("SIGINT");
    await new Promise((r) => setTimeout(r, 1000));
    expect({ code: kbs.child.exitCode, signal: kbs.child.signalCode }).toEqual({ code: null, signal: null });
    // Only SIGINT is handled that early: up's SIGTERM stops it by its default action (up counts that
    // as a clean stop, having checked that no model copy of it is left).
    kbs.child.kill("SIGTERM");
    expect(await kbs.exited).toEqual({ code: null, signal: "SIGTERM" });
  });

  it("is ignored before bin/cloister.js has loaded tsx, its first import (static, it came before the first line)", async () => {
    const hold = join(import.meta.dirname, "..", "helpers", "delay-supervised-command.mjs");
    const env = {
      ...process.env,
      CLOISTER_SUPERVISED: `supervisor-pid:${process.pid}`,
      CLOISTER_TEST_HOLD_AT: "tsx",
      NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --import ${hold}`,
    };
    const kbs = start(["kbs", "serve", "--config", files.kbs?.configPath as string, "--port", "0"], env);
    await kbs.until(() => kbs.output().stderr.includes("held before its command"));
    kbs.child.kill("SIGINT");
    await new Promise((r) => setTimeout(r, 1000));
    expect({ code: kbs.child.exitCode, signal: kbs.child.signalCode }).toEqual({ code: null, signal: null });
    kbs.child.kill("SIGTERM");
    expect(await kbs.exited).toEqual({ code: null, signal: "SIGTERM" });
  });
});

describe("a child of cloister up whose up is killed before the child has loaded its command", () => {
  it.each([
    {
      // Killed while the child is held after bin/cloister.js's first lines; the child, re-parented,
      // then loads its command, which recorded the parent it found then and ran on, ignoring Ctrl-C.
      when: "after bin/cloister.js's first lines: it stops on its own once loaded, watching the up they found",
      hook: "delay-supervised-command.mjs",
      held: "held before its command",
      said: "",
    },
    {
      // Killed before bin/cloister.js's first lines ran: they found a parent that was not the one
      // CLOISTER_SUPERVISED names (init, or a subreaper), and ran the command as an ordinary one,
      // which never stopped.
      when: "before bin/cloister.js's first lines: they find its up gone, and it does not start",
      hook: "delay-supervised-start.mjs",
      held: "held before bin/cloister.js",
      said: "has gone; not starting\n",
    },
  ])(
    "$when",
    async ({ hook, held, said }) => {
      // A stand-in for up starts the child (its output goes straight to this test), says its pid, and
      // is killed while the child is held.
      const hold = join(import.meta.dirname, "..", "helpers", hook);
      const release = join(dir, `release-orphan-${hook}`);
      const args = ["kbs", "serve", "--config", files.kbs?.configPath as string, "--port", "0"];
      const supervisor = `
      const { spawn } = require("node:child_process");
      const env = { ...process.env, CLOISTER_SUPERVISED: "supervisor-pid:" + process.pid };
      const child = spawn(process.execPath, ${JSON.stringify([CLI, ...args])}, { env, stdio: "inherit" });
      console.log("child pid " + child.pid);
      setInterval(() => {}, 1000);`;
      const env = {
        ...process.env,
        CLOISTER_TEST_RELEASE: release,
        NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --import ${hold}`,
      };
      const up = spawn(process.execPath, ["-e", supervisor], { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] });
      children.push(up);
      let stdout = "";
      let stderr = "";
      up.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      up.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      const until = async (done: () => boolean) => {
        const deadline = Date.now() + 30_000;
        while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      };
      await until(() => stderr.includes(held) && /child pid \d+/.test(stdout));
      const pid = Number(/child pid (\d+)/.exec(stdout)?.[1]);
      const running = () => {
        try {
          process.kill(pid, 0);
          return true;
        } catch {
          return false;
        }
      };
      try {
        up.kill("SIGKILL");
        await new Promise((resolve) => up.once("exit", resolve));
        await writeFile(release, "");
        await until(() => !running());
        expect(running(), stderr).toBe(false);
        expect(stderr).toContain(said);
      } finally {
        if (running()) process.kill(pid, "SIGKILL");
      }
    },
    60_000,
  );
});

describe("bin/cloister.js: the supervised mode is entered only when CLOISTER_SUPERVISED names the parent", () => {
  /** Starts `cloister kbs serve` with CLOISTER_SUPERVISED set to `value`; resolves once it is ready. */
  async function serve(value: string) {
    const env = { ...process.env, CLOISTER_SUPERVISED: value };
    const kbs = start(["kbs", "serve", "--config", files.kbs?.configPath as string, "--port", "0"], env);
    await kbs.until(() => kbs.output().stdout.includes('"ready"'));
    expect(kbs.output().stdout, kbs.output().stderr).toContain('"event":"ready"');
    return kbs;
  }

  // A value exported by accident in a shell made every command ignore Ctrl-C; one inherited from
  // another supervisor (up's pid, not this process's parent) would do the same.
  it.each([
    { what: "exported by accident in a shell", value: () => "1" },
    { what: "naming another process than its parent", value: () => `supervisor-pid:${process.ppid}` },
  ])("not with a CLOISTER_SUPERVISED $what: Ctrl-C stops the command", async ({ value }) => {
    const kbs = await serve(value());
    kbs.child.kill("SIGINT");
    expect(await kbs.exited, kbs.output().stderr).toEqual({ code: 0, signal: null });
  });

  it("with one naming its parent (up's pid): Ctrl-C is ignored, up's SIGTERM stops it", async () => {
    const kbs = await serve(`supervisor-pid:${process.pid}`);
    kbs.child.kill("SIGINT");
    await new Promise((r) => setTimeout(r, 1000));
    expect({ code: kbs.child.exitCode, signal: kbs.child.signalCode }).toEqual({ code: null, signal: null });
    kbs.child.kill("SIGTERM");
    expect(await kbs.exited, kbs.output().stderr).toEqual({ code: 0, signal: null });
  });
});

describe("cloister host: SIGTERM during start-up", () => {
  it("while it reads its pool's members (which do not answer): exit 0, says so", async () => {
    // Two members that take connections and never answer: the host's first read of the pool waits
    // for them (up to its 30 s upstream timeout) before it listens.
    const held: Socket[] = [];
    const members = [0, 1].map(() => createTcpServer((socket) => held.push(socket)));
    const ports = await Promise.all(
      members.map(
        (member) =>
          new Promise<number>((resolve) =>
            member.listen(0, "127.0.0.1", () => resolve((member.address() as { port: number }).port)),
          ),
      ),
    );
    try {
      const host = start([
        "host",
        ...ports.flatMap((port) => ["--enclave-url", `http://127.0.0.1:${port}`]),
        "--api-keys",
        files.apiKeysPath,
        "--audit-dir",
        join(dir, "audit"),
        "--port",
        "0",
      ]);
      await host.until(() => held.length === 2);
      expect(held).toHaveLength(2);
      host.child.kill("SIGTERM");
      const run = await host.exited;
      const { stdout, stderr } = host.output();
      expect({ ...run, stdout }, stderr).toEqual({ code: 0, signal: null, stdout: "" });
      expect(stderr).toBe("cloister host: stopped (SIGTERM during start-up) before serving\n");
    } finally {
      for (const socket of held) socket.destroy();
      for (const member of members) member.close();
    }
  });
});
