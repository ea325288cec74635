/**
 * Model staging's private copies (enclave/model-staging.ts). A process that dies without removing
 * its copy (the OOM killer, SIGKILL after a stop timeout) leaves the model, decrypted for a sealed
 * one, in memory until the machine reboots; the next staging removes the copies of processes that
 * have ended, and never one whose process still runs (several enclaves may share a machine).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import {
  appendFile,
  chown,
  copyFile,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  statfs,
  truncate,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EngineError } from "../../enclave/engine/errors.ts";
import {
  type CopyOwner,
  checkModelFile,
  copiesLeftText,
  copyOwnerOf,
  modelCopiesOfProcess,
  stageModel,
} from "../../enclave/model-staging.ts";
import { ownerTag, thisProcessOwner } from "../../models/process-owner.ts";
import { generateModelKey, type SealedModelInfo, sealModelFile } from "../../models/sealed.ts";
import { writeTinyModel } from "../../models/tiny.ts";

const STAGING = fileURLToPath(new URL("../../enclave/model-staging.ts", import.meta.url));
const FAIL_REMOVAL = fileURLToPath(new URL("../helpers/fail-model-copy-removal.mjs", import.meta.url));
const KEY_ID = "staging-test";
const modelKey = generateModelKey(KEY_ID);
let dir: string;
let plainPath: string;
let plainSize: number;
let sealedPath: string;
let sealed: SealedModelInfo;
/** The staging processes started, and when each ended. */
const children: { child: ChildProcess; exited: Promise<unknown> }[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cloister-staging-test-"));
  plainPath = join(dir, "tiny.gguf");
  await writeTinyModel(plainPath);
  plainSize = (await stat(plainPath)).size;
  sealedPath = join(dir, "tiny.gguf.sealed");
  sealed = await sealModelFile(plainPath, sealedPath, modelKey);
});

afterAll(async () => {
  for (const { child } of children) child.kill("SIGKILL");
  await Promise.all(children.map((c) => c.exited));
  await rm(dir, { recursive: true, force: true });
});

/** A fresh 0700 directory `name` under the test's directory: a root for private copies (privateRoot). */
async function privateDirectory(name: string): Promise<string> {
  const root = join(dir, name);
  await mkdir(root, { mode: 0o700 });
  return root;
}

/**
 * Runs `body` (ESM, through tsx, with `stageModel` and `stageSealedModel` imported) in a process
 * of its own; resolves with the first line it prints, and the process (still running, unless
 * `body` ends it).
 */
function runStaging(body: string): Promise<{ child: ChildProcess; line: string; exited: Promise<unknown> }> {
  const script = `import { stageModel, stageSealedModel } from ${JSON.stringify(STAGING)};\n${body}`;
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
    env: { ...process.env, MODEL_KEY_HEX: Buffer.from(modelKey.key).toString("hex") },
    stdio: ["pipe", "pipe", "inherit"],
  });
  const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve(signal ?? code)));
  children.push({ child, exited });
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes("\n")) resolve({ child, line: out.split("\n")[0] as string, exited });
    });
    void exited.then((how) => reject(new Error(`staging process ended (${String(how)}) before printing a line`)));
  });
}

async function sameBytes(a: string, b: string): Promise<boolean> {
  return (await readFile(a)).equals(await readFile(b));
}

async function names(root: string): Promise<string[]> {
  return (await readdir(root)).sort();
}

describe("model staging", () => {
  it("removes the copies of processes that died without removing them, never one a running process uses", async () => {
    const root = await privateDirectory("private");
    const privateRoot = async () => root;

    // An enclave on this machine stages its model and keeps running.
    const running = await runStaging(
      `const staged = await stageModel(${JSON.stringify(plainPath)}, ${plainSize}, { privateRoot: async () => ${JSON.stringify(root)} });
process.stdout.write(staged.path + "\\n");
process.stdin.resume();`,
    );
    const inUse = dirname(running.line);
    // Then a process decrypts the sealed model, and is killed (as by the OOM killer): its staging
    // left the running one's copy alone.
    const killed = await runStaging(
      `const staged = await stageSealedModel(${JSON.stringify(sealedPath)}, ${JSON.stringify({ sha256: sealed.sha256, sizeBytes: sealed.sizeBytes, keyId: KEY_ID })}, { keyId: ${JSON.stringify(KEY_ID)}, key: Buffer.from(process.env.MODEL_KEY_HEX, "hex") }, { allowDisk: true, privateRoot: async () => ${JSON.stringify(root)} });
process.stdout.write(staged.path + "\\n", () => process.kill(process.pid, "SIGKILL"));`,
    );
    expect(await killed.exited).toBe("SIGKILL");
    const leftBehind = dirname(killed.line);
    expect(await sameBytes(killed.line, plainPath)).toBe(true); // the decrypted model
    // A copy whose name records no owner (an older version's).
    const unrecorded = join(root, "cloister-model-unrecorded");
    await mkdir(unrecorded);
    expect((await names(root)).sort()).toEqual([basename(leftBehind), basename(inUse), basename(unrecorded)].sort());

    const staged = await stageModel(plainPath, plainSize, { privateRoot });
    try {
      expect(await names(root)).toEqual([basename(dirname(staged.path)), basename(inUse), basename(unrecorded)].sort());
      expect(await sameBytes(running.line, plainPath)).toBe(true);

      // A pid used again by a later process is not the copy's owner; a pid of another pid
      // namespace (another container sharing /dev/shm) may be anyone's, so its copy stays.
      const self = copyOwnerOf(basename(dirname(staged.path)));
      expect(self?.pid).toBe(process.pid);
      const { start, pidNamespace } = self as CopyOwner;
      const reused = `cloister-model-${process.pid}-1-${pidNamespace ?? "x"}-reused`;
      const otherNamespace = `cloister-model-${killed.child.pid}-${start ?? "x"}-1-othrns`;
      // A copy of a process that has ended, but another user's: not this user's to remove.
      const otherUser = `cloister-model-${killed.child.pid}-${start ?? "x"}-${pidNamespace ?? "x"}-othusr`;
      for (const name of [reused, otherNamespace, otherUser]) {
        expect(copyOwnerOf(name)).not.toBeNull();
        await mkdir(join(root, name));
      }
      // chown needs root, as CI has (this fails, never skips, where it cannot be done).
      await chown(join(root, otherUser), (process.getuid?.() ?? 0) + 4242, 4242);
      const again = await stageModel(plainPath, plainSize, { privateRoot });
      const kept = await names(root);
      await again.remove();
      expect(kept).toContain(otherNamespace);
      expect(kept).toContain(otherUser);
      expect(kept).toContain(basename(inUse));
      expect(kept).toContain(basename(dirname(staged.path)));
      // Linux tells a reused pid by its start time; elsewhere (no /proc) a live pid keeps its copy.
      expect(kept.includes(reused)).toBe(start === null);
    } finally {
      await staged.remove();
      running.child.kill("SIGKILL");
    }
  });

  it("a copy not removed by its owner is removed when the process exits (process.exit), plain and sealed", async () => {
    const root = await privateDirectory("exit-private");
    const privateRoot = `async () => ${JSON.stringify(root)}`;
    const plain = await runStaging(
      `const staged = await stageModel(${JSON.stringify(plainPath)}, ${plainSize}, { privateRoot: ${privateRoot} });
process.stdout.write(staged.path + "\\n", () => process.exit(141));`,
    );
    const decrypted = await runStaging(
      `const staged = await stageSealedModel(${JSON.stringify(sealedPath)}, ${JSON.stringify({ sha256: sealed.sha256, sizeBytes: sealed.sizeBytes, keyId: KEY_ID })}, { keyId: ${JSON.stringify(KEY_ID)}, key: Buffer.from(process.env.MODEL_KEY_HEX, "hex") }, { allowDisk: true, privateRoot: ${privateRoot} });
process.stdout.write(staged.path + "\\n", () => process.exit(130));`,
    );
    expect([await plain.exited, await decrypted.exited]).toEqual([141, 130]);
    expect(dirname(plain.line)).toMatch(/cloister-model-/);
    expect(await names(root)).toEqual([]);
    // One removed by its owner leaves no exit listener behind.
    const staged = await stageModel(plainPath, plainSize, { privateRoot: async () => root });
    const listeners = process.listenerCount("exit");
    await staged.remove();
    expect(process.listenerCount("exit")).toBe(listeners - 1);
  });

  it("a copy whose removal failed keeps its exit hook: it is removed when the process exits", async () => {
    const root = await privateDirectory("failed-removal-private");
    // The removal fails (EBUSY, from a stand-in for node:fs/promises' rm, the one it uses), then the
    // process ends normally; the synchronous try at exit (node:fs's rmSync) is left to succeed.
    const failing = await runStaging(
      `const staged = await stageModel(${JSON.stringify(plainPath)}, ${plainSize}, { privateRoot: async () => ${JSON.stringify(root)} });
const fsp = (await import("node:fs/promises")).default;
fsp.rm = async () => { throw Object.assign(new Error("EBUSY (a stand-in)"), { code: "EBUSY" }); };
(await import("node:module")).syncBuiltinESMExports();
const code = await staged.remove().then(() => "removed", (error) => error.code);
process.stdout.write(staged.path + " " + code + "\\n");`,
    );
    const [path, code] = failing.line.split(" ");
    expect(code).toBe("EBUSY");
    expect(await failing.exited).toBe(0);
    expect(dirname(path as string)).toMatch(/cloister-model-/);
    expect(await names(root)).toEqual([]);
  });

  it("a sealed model refused while it is decrypted fails with its own error when its copy cannot be removed; the copy is recorded", async () => {
    const root = await privateDirectory("sealed-refused-private");
    // Altered in its last chunk: decrypted up to there into the copy, then refused.
    const altered = join(dir, "altered.gguf.sealed");
    const bytes = await readFile(sealedPath);
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] as number) ^ 0xff;
    await writeFile(altered, bytes);
    // The copy's removal through node:fs/promises' rm fails (EBUSY), as fail-model-copy-removal.mjs
    // makes it (other files are removed); the try at exit (rmSync) succeeds.
    const failing = await runStaging(
      `const fsp = (await import("node:fs/promises")).default;
const rm = fsp.rm;
fsp.rm = async (path, options) => {
  if ((await import("node:path")).basename(path).startsWith("cloister-model-")) throw Object.assign(new Error("EBUSY (a stand-in)"), { code: "EBUSY" });
  return rm(path, options);
};
(await import("node:module")).syncBuiltinESMExports();
const { modelCopiesLeft } = await import(${JSON.stringify(STAGING)});
const error = await stageSealedModel(${JSON.stringify(altered)}, ${JSON.stringify({ sha256: sealed.sha256, sizeBytes: sealed.sizeBytes, keyId: KEY_ID })}, { keyId: ${JSON.stringify(KEY_ID)}, key: Buffer.from(process.env.MODEL_KEY_HEX, "hex") }, { allowDisk: true, privateRoot: async () => ${JSON.stringify(root)} }).then(() => null, (e) => e);
process.stdout.write(JSON.stringify({ code: error?.code ?? null, left: modelCopiesLeft() }) + "\\n");`,
    );
    const { code, left } = JSON.parse(failing.line) as {
      code: string | null;
      left: { dir: string; removalError: string }[];
    };
    expect(code).toBe("SEALED_MODEL_AUTH_FAILED");
    expect(left).toEqual([{ dir: expect.stringMatching(/\/cloister-model-/), removalError: "EBUSY" }]);
    expect(dirname(left[0]?.dir as string)).toBe(root);
    expect(await failing.exited).toBe(0);
    expect(await names(root)).toEqual([]);
  });

  it("stageModel fails with its own error (MODEL_LOAD_FAILED, MODEL_CHANGED_DURING_LOAD) when its copy cannot be removed; the copy is recorded", async () => {
    const root = await privateDirectory("plain-refused-private");
    const growing = join(dir, "growing-refused.gguf");
    await copyFile(plainPath, growing);
    // Removing a copy fails (EBUSY), by rm and at exit alike (fail-model-copy-removal.mjs). The copy
    // fails: /proc/self/mem is a regular file whose read at offset 0 fails with EIO; the other
    // file grows after stageModel took its size (as the root is asked for).
    const failing = await runStaging(
      `await import(${JSON.stringify(FAIL_REMOVAL)});
const { modelCopiesLeft } = await import(${JSON.stringify(STAGING)});
const outcome = (e) => ({ code: e.code, message: e.message });
const unreadable = await stageModel("/proc/self/mem", null, { privateRoot: async () => ${JSON.stringify(root)} }).then(() => null, outcome);
const grew = await stageModel(${JSON.stringify(growing)}, null, { privateRoot: async () => {
  await (await import("node:fs/promises")).appendFile(${JSON.stringify(growing)}, Buffer.alloc(4096));
  return ${JSON.stringify(root)};
} }).then(() => null, outcome);
process.stdout.write(JSON.stringify({ unreadable, grew, left: modelCopiesLeft() }) + "\\n");`,
    );
    const { unreadable, grew, left } = JSON.parse(failing.line) as {
      unreadable: { code: string; message: string };
      grew: { code: string; message: string };
      left: { dir: string; removalError: string }[];
    };
    expect(await failing.exited).toBe(0);
    const copies = await names(root);
    for (const name of copies) await rm(join(root, name), { recursive: true, force: true });
    expect(unreadable.code).toBe("MODEL_LOAD_FAILED");
    expect(unreadable.message).toMatch(
      /^model file \/proc\/self\/mem: cannot be copied into .*\/cloister-model-.* \(EIO\)$/,
    );
    expect(grew.code).toBe("MODEL_CHANGED_DURING_LOAD");
    expect(left).toEqual([
      { dir: expect.stringMatching(/\/cloister-model-/), removalError: "EBUSY" },
      { dir: expect.stringMatching(/\/cloister-model-/), removalError: "EBUSY" },
    ]);
    // The copy MODEL_LOAD_FAILED names is one of those left, and both are the ones in the root.
    expect(unreadable.message).toContain(left[0]?.dir);
    expect(left.map((c) => basename(c.dir)).sort()).toEqual(copies);
  });

  it("copies the file it checked: a FIFO swapped in at its path after the check is never opened", async () => {
    const source = join(dir, "swapped.gguf");
    await copyFile(plainPath, source);
    const fifo = join(dir, "swapped.fifo");
    execFileSync("mkfifo", [fifo]);
    const root = await mkdtemp(join(dir, "root-"));
    // Called between the check and the copy: the path now names a FIFO with no writer, which an
    // open by path would wait on for good.
    const privateRoot = async () => {
      await rename(fifo, source);
      return root;
    };
    const staged = await stageModel(source, plainSize, { privateRoot });
    try {
      expect((await stat(source)).isFIFO()).toBe(true);
      expect(await sameBytes(staged.path, plainPath)).toBe(true);
    } finally {
      await staged.remove();
    }
  });
});

/**
 * A private root too small for the model (Docker's and Kubernetes' default /dev/shm is 64 MiB) is
 * refused before anything is copied, at the boot's first look at the file (checkModelFile, before
 * keys, evidence and the key broker), naming the directory, the bytes free and needed, and the fix.
 * The free space is injected (freeBytes) where the test needs a small figure; one case uses the
 * real statfs of the temp directory with a sparse file larger than its free space.
 */
describe("modelCopiesOfProcess", () => {
  it("names the copies a dead process left, never a live process's that has its pid now, nor another namespace's", async () => {
    // This process stands for a live enclave that has the dead child's pid now: its copy records
    // its start time. A copy recording another start time is a process's that had the pid before
    // (the dead child's); one recording another pid namespace is another container's.
    const root = await privateDirectory("copies-of-process");
    const self = await thisProcessOwner();
    const live = `cloister-model-${ownerTag(self)}-livecp`;
    const dead = `cloister-model-${process.pid}-1-${self.pidNamespace ?? "x"}-deadcp`;
    const otherNamespace = `cloister-model-${process.pid}-1-1-othrns`;
    const otherPid = `cloister-model-${process.pid + 1}-1-${self.pidNamespace ?? "x"}-othpid`;
    for (const name of [live, dead, otherNamespace, otherPid]) await mkdir(join(root, name));
    // Linux tells a used-again pid by its start time; elsewhere (no /proc) a live pid has no dead copy.
    const deadOwner = { pid: process.pid, start: "1", pidNamespace: self.pidNamespace };
    expect(await modelCopiesOfProcess(deadOwner, [root])).toEqual(self.start === null ? [] : [join(root, dead)]);
    expect(await modelCopiesOfProcess(self, [root])).toEqual([]);
  });

  it("names only the copies of the exact process asked about: an older dead process that had its pid is not it", async () => {
    // Two dead processes had this pid, one after the other (started at ticks 1 and 2): asked about
    // the later one (a supervisor's child, its start read when it was spawned), the earlier one's
    // copy is not named as its.
    const root = await privateDirectory("copies-of-exact-process");
    const self = await thisProcessOwner();
    const ns = self.pidNamespace ?? "x";
    const older = `cloister-model-${process.pid}-1-${ns}-oldrcp`;
    const child = `cloister-model-${process.pid}-2-${ns}-chldcp`;
    for (const name of [older, child]) await mkdir(join(root, name));
    const childOwner = { pid: process.pid, start: "2", pidNamespace: self.pidNamespace };
    expect(await modelCopiesOfProcess(childOwner, [root])).toEqual(self.start === null ? [] : [join(root, child)]);
  });
});

describe("the private copy", () => {
  it("stageModel writes a 0600 copy in a 0700 directory, and refuses a file of another size or one that grows while it is copied", async () => {
    const root = await mkdtemp(join(dir, "root-"));
    const staged = await stageModel(plainPath, plainSize, { privateRoot: async () => root });
    try {
      expect((await stat(staged.path)).mode & 0o777).toBe(0o600);
      expect((await stat(dirname(staged.path))).mode & 0o777).toBe(0o700);
    } finally {
      await staged.remove();
    }
    const other = await stageModel(plainPath, plainSize + 1, { privateRoot: async () => root }).catch(
      (e: unknown) => e,
    );
    expect(other).toMatchObject({ code: "MODEL_SIZE_MISMATCH" });
    // The host appends to the file after stageModel took its size (here: as the root is asked for).
    const growing = join(dir, "growing.gguf");
    const cases: [number | null, string, string][] = [
      [
        plainSize,
        "MODEL_SIZE_MISMATCH",
        `expected ${plainSize} bytes (the manifest's model.sizeBytes), found ${plainSize + 1}`,
      ],
      [null, "MODEL_CHANGED_DURING_LOAD", `was ${plainSize} bytes when opened, ${plainSize + 1} bytes were copied`],
    ];
    for (const [expectedBytes, code, message] of cases) {
      await copyFile(plainPath, growing);
      const privateRoot = async () => {
        await appendFile(growing, Buffer.alloc(4096));
        return root;
      };
      const error = await stageModel(growing, expectedBytes, { privateRoot }).catch((e: unknown) => e);
      expect(error).toMatchObject({ code });
      expect((error as Error).message).toContain(message);
    }
    expect(await readdir(root)).toEqual([]);
  });
});

describe("room in the private root", () => {
  const tooSmall = (free: number) => async () => free;
  const refusal = (attempt: Promise<unknown>): Promise<EngineError> =>
    attempt.then(
      () => {
        throw new Error("expected a refusal, it went through");
      },
      (e: unknown) => e as EngineError,
    );

  it("checkModelFile refuses a /dev/shm without room for the model: MODEL_NO_ROOM naming the directory, free and needed bytes, and the fix", async () => {
    const error = await refusal(
      checkModelFile(
        plainPath,
        { sizeBytes: plainSize, keyId: null },
        { privateRoot: async () => "/dev/shm", freeBytes: tooSmall(plainSize - 1) },
      ),
    );
    expect(error).toBeInstanceOf(EngineError);
    expect(error.code).toBe("MODEL_NO_ROOM");
    expect(error.message).toBe(
      `model file ${plainPath}: its private copy needs ${plainSize} bytes in /dev/shm, found ${plainSize - 1} bytes free; give it a /dev/shm at least that large (docker run --shm-size=…; in Kubernetes an emptyDir volume with medium: Memory and a sizeLimit, mounted at /dev/shm; see docs/deploy.md)`,
    );
    // Exactly enough room passes.
    await checkModelFile(
      plainPath,
      { sizeBytes: plainSize, keyId: null },
      { privateRoot: async () => "/dev/shm", freeBytes: tooSmall(plainSize) },
    );
  });

  it("checkModelFile counts a sealed model's plaintext, the size of its decrypted copy", async () => {
    const expected = { sizeBytes: sealed.sizeBytes, keyId: KEY_ID };
    const freeBytes = tooSmall(plainSize - 1);
    const error = await refusal(
      checkModelFile(sealedPath, expected, { privateRoot: async () => "/dev/shm", freeBytes }),
    );
    expect(error.code).toBe("MODEL_NO_ROOM");
    expect(error.message).toContain(`needs ${plainSize} bytes in /dev/shm, found ${plainSize - 1} bytes free`);
    await checkModelFile(sealedPath, expected, { privateRoot: async () => "/dev/shm", freeBytes: tooSmall(plainSize) });
  });

  it("checkModelFile refuses a sealed model without private memory to decrypt into, before the key broker is asked (not in the simulator)", async () => {
    const noShm = { privateRoot: async () => join(dir, "disk"), freeBytes: tooSmall(plainSize) };
    const error = await refusal(
      checkModelFile(sealedPath, { sizeBytes: sealed.sizeBytes, keyId: KEY_ID, allowDisk: false }, noShm),
    );
    expect(error.code).toBe("MODEL_NO_PRIVATE_MEMORY");
    expect(error.message).toContain("refusing to write decrypted weights to a disk (mount a tmpfs at /dev/shm)");
    // The simulator may use the temp directory; a plain model is not decrypted, so it may be copied there.
    await checkModelFile(sealedPath, { sizeBytes: sealed.sizeBytes, keyId: KEY_ID, allowDisk: true }, noShm);
    await checkModelFile(plainPath, { sizeBytes: plainSize, keyId: null, allowDisk: false }, noShm);
  });

  it("checkModelFile with the real statfs: a (sparse) model larger than the temp directory's free space is refused", async () => {
    const root = await mkdtemp(join(dir, "root-"));
    const { bavail, bsize } = await statfs(root);
    const huge = join(dir, "huge.gguf");
    const size = bavail * bsize + 2 ** 30;
    await writeFile(huge, "");
    await truncate(huge, size);
    try {
      const error = await refusal(
        checkModelFile(huge, { sizeBytes: size, keyId: null }, { privateRoot: async () => root }),
      );
      expect(error.code).toBe("MODEL_NO_ROOM");
      expect(error.message).toMatch(
        new RegExp(`needs ${size} bytes in ${root}, found \\d+ bytes free; free space there, or set TMPDIR`),
      );
    } finally {
      await rm(huge, { force: true });
    }
  });

  it("stageModel refuses before copying anything (no directory is made)", async () => {
    const root = await mkdtemp(join(dir, "root-"));
    const error = await refusal(
      stageModel(plainPath, plainSize, {
        privateRoot: async () => root,
        freeBytes: tooSmall(1000),
      }),
    );
    expect(error.code).toBe("MODEL_NO_ROOM");
    expect(error.message).toContain(`needs ${plainSize} bytes in ${root}, found 1000 bytes free`);
    expect(await readdir(root)).toEqual([]);
  });

  /**
   * The root filling up during the copy (another process, or a figure statfs got wrong): the copy
   * fails with ENOSPC, and the message, all the CLI prints, names the errno and the directory. A
   * real tmpfs of half the model's size in a mount namespace of its own (unshare -m: this needs root, as CI has; the
   * test fails, never skips, where that cannot be made).
   */
  it("a copy that runs out of room names ENOSPC and the directory (plain and sealed)", () => {
    const small = join(dir, "small-shm");
    // Half the model, in whole pages (tmpfs rounds its size up to pages).
    const tmpfsBytes = Math.floor(plainSize / 2 / 4096) * 4096;
    execFileSync("mkdir", ["-p", small]);
    const script = `
      import { stageModel, stageSealedModel } from ${JSON.stringify(STAGING)};
      const key = { keyId: ${JSON.stringify(KEY_ID)}, key: Buffer.from(process.env.MODEL_KEY_HEX, "hex") };
      const root = async () => ${JSON.stringify(small)};
      const plain = await stageModel(${JSON.stringify(plainPath)}, ${plainSize}, {
        privateRoot: root,
        freeBytes: async () => Infinity,
      }).then(() => "staged", (e) => e.code + ": " + e.message);
      const sealed = await stageSealedModel(
        ${JSON.stringify(sealedPath)},
        { sha256: ${JSON.stringify(sealed.sha256)}, sizeBytes: ${sealed.sizeBytes}, keyId: ${JSON.stringify(KEY_ID)} },
        key,
        { allowDisk: true, privateRoot: root },
      ).then(() => "staged", (e) => e.code + ": " + e.message);
      console.log(JSON.stringify({ plain, sealed }));
    `;
    const out = execFileSync(
      "unshare",
      [
        "-m",
        "sh",
        "-c",
        `mount -t tmpfs -o size=${tmpfsBytes} tmpfs "$0" && exec "$1" --import tsx --input-type=module -e "$2"`,
        small,
        process.execPath,
        script,
      ],
      {
        encoding: "utf8",
        timeout: 60_000,
        env: { ...process.env, MODEL_KEY_HEX: Buffer.from(modelKey.key).toString("hex") },
      },
    );
    const { plain, sealed: unsealed } = JSON.parse(out) as { plain: string; sealed: string };
    expect(plain).toMatch(
      new RegExp(
        `^MODEL_LOAD_FAILED: model file ${plainPath}: cannot be copied into ${small}/cloister-model-[^ ]+ \\(ENOSPC\\)$`,
      ),
    );
    expect(unsealed).toMatch(
      new RegExp(`^MODEL_IO: model file ${small}/cloister-model-[^/ ]+/model\\.gguf: cannot write \\(ENOSPC\\)$`),
    );
  });
});

describe("copiesLeftText", () => {
  it("says none, one (with its removal's error) or several copies, each to remove by hand", () => {
    expect(copiesLeftText([])).toBe("no copy of the model is left");
    expect(copiesLeftText([{ dir: "/dev/shm/cloister-model-1-a", removalError: "EBUSY" }])).toBe(
      "could not remove the model copy /dev/shm/cloister-model-1-a (EBUSY): remove it by hand",
    );
    expect(
      copiesLeftText([
        { dir: "/dev/shm/cloister-model-1-a", removalError: null },
        { dir: "/tmp/cloister-model-1-b", removalError: "EIO" },
      ]),
    ).toBe(
      "could not remove the model copies /dev/shm/cloister-model-1-a, /tmp/cloister-model-1-b (EIO): remove them by hand",
    );
  });
});
