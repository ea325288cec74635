/**
 * `cloister up`'s local deployment files: a restart keeps the sealed model, and with it the manifest
 * and the client policy, so a policy copied elsewhere (a running proxy, a web page) stays valid.
 * Every file it writes has the mode the key broker's checks ask for, whatever the umask and
 * whatever mode an earlier run left.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import type { Stats } from "node:fs";
import { access, chmod, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { loadBrokerConfig } from "../../attestation/kbs/config.ts";
import type { BrokerLogEntry } from "../../attestation/kbs/server.ts";
import { isPerRequestLogLine, prepareDeployment } from "../../client/cli/deploy.ts";
import { UsageError } from "../../client/cli/output.ts";
import { refusalLogLine } from "../../enclave/run.ts";
import { jsonLinesAccessLog } from "../../host/access-log.ts";
import { ModelNotRegularFileError } from "../../models/errors.ts";
import { rejectionOf } from "../helpers/rejections.ts";

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function prepare(dir: string) {
  const progress: string[] = [];
  const files = await prepareDeployment({
    dir,
    tee: "sim-snp",
    threads: 1,
    progress: (line) => progress.push(line),
    sealedModel: true,
  });
  const sealed = await readFile(files.modelPath);
  return {
    files,
    progress,
    policy: await readFile(files.policyPath, "utf8"),
    sealedSha256: createHash("sha256").update(sealed).digest("hex"),
  };
}

describe("prepareDeployment (cloister up) across restarts", () => {
  it("names a key file of an earlier run that is not JSON by its path, never quoting it (it holds a private key)", async () => {
    const secret = "sk-live-SECRET-4f9a";
    const broken = `{"kty":"OKP","crv":"Ed25519","d":${secret}}`;
    const rejected = async (dir: string) => {
      const error = await rejectionOf(prepare(dir), Error);
      expect(inspect(error, { depth: 10 })).not.toContain("sk-live");
      return error.message;
    };
    const operator = await mkdtemp(join(tmpdir(), "cloister-deploy-"));
    dirs.push(operator);
    await writeFile(join(operator, "operator.private.jwk"), broken, { mode: 0o600 });
    await writeFile(join(operator, "operator.public.jwk"), "{}");
    expect(await rejected(operator)).toBe(
      `${join(operator, "operator.private.jwk")}: expected a JWK, found text that is not valid JSON`,
    );
    const model = await mkdtemp(join(tmpdir(), "cloister-deploy-"));
    dirs.push(model);
    await mkdir(join(model, "kbs"), { recursive: true });
    await writeFile(join(model, "kbs", "model-key.jwk"), `{"kty":"oct","k":"${secret}" "kid":1}`, { mode: 0o600 });
    expect(await rejected(model)).toBe(
      `${join(model, "kbs", "model-key.jwk")}: expected a JWK, found text that is not valid JSON (at position 39)`,
    );
  });

  it("keeps the sealed model, so the client policy stays the same", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cloister-deploy-"));
    dirs.push(dir);
    const first = await prepare(dir);
    expect(first.progress.join("\n")).toContain("sealing it");
    const second = await prepare(dir);
    expect(second.progress.join("\n")).not.toContain("sealing it");
    expect(second.sealedSha256).toBe(first.sealedSha256);
    expect(second.policy).toBe(first.policy);
    expect(await readdir(join(dir, "models"))).toEqual(["tiny.gguf.sealed"]);
    expect(JSON.parse(second.policy).manifest.allowedModelDigests).toEqual([first.sealedSha256]);
  });

  it("keeps the operator key when only its public file is gone (the policy trusts the key's own public part)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cloister-deploy-"));
    dirs.push(dir);
    const first = await prepare(dir);
    const operatorKey = await readFile(join(dir, "operator.private.jwk"), "utf8");
    const operatorPublic = await readFile(join(dir, "operator.public.jwk"), "utf8");
    await rm(join(dir, "operator.public.jwk"));
    const second = await prepare(dir);
    expect(await readFile(join(dir, "operator.private.jwk"), "utf8")).toBe(operatorKey);
    expect(await readFile(join(dir, "operator.public.jwk"), "utf8")).toBe(operatorPublic);
    expect(second.policy).toBe(first.policy);
  });

  it("stops when the sealed model's name holds a directory, FIFO or device (MODEL_IO), leaving it there", async () => {
    // Not a file of an earlier run (openEarlierModel: none), and not replaced by the new seal either:
    // sealModelFile refuses it before any work, as model seal does. Tests run as root (mknod).
    const dir = await mkdtemp(join(tmpdir(), "cloister-deploy-"));
    dirs.push(dir);
    const first = await prepare(dir);
    const sealedPath = first.files.modelPath;
    const cases: [string, () => unknown, (info: Stats) => boolean][] = [
      ["a directory", () => mkdir(sealedPath), (info) => info.isDirectory()],
      ["a FIFO", () => execFileSync("mkfifo", [sealedPath]), (info) => info.isFIFO()],
      [
        "a character device",
        () => execFileSync("mknod", [sealedPath, "c", "1", "3"]),
        (info) => info.isCharacterDevice(),
      ],
    ];
    for (const [found, make, isStill] of cases) {
      await rm(sealedPath, { recursive: true, force: true });
      await make();
      const refusal = await rejectionOf(prepare(dir), ModelNotRegularFileError);
      expect([refusal.code, refusal.message]).toEqual([
        "MODEL_IO",
        `sealed model output ${sealedPath}: expected a regular file, found ${found}`,
      ]);
      expect(isStill(await lstat(sealedPath))).toBe(true);
      // Nothing was sealed beside it: only the name refused is in models/.
      expect(await readdir(join(dir, "models"))).toEqual(["tiny.gguf.sealed"]);
    }
    await rm(sealedPath, { recursive: true, force: true });
  });

  it("removes a FIFO at the plain model's name, and stops before any work at a directory there (MODEL_IO)", async () => {
    // A sealing run keeps the sealed file only: whatever an earlier run left at tiny.gguf is removed,
    // never written through. A directory, which rm does not remove, stopped up after sealing with
    // Node's ERR_FS_EISDIR (exit 1).
    const dir = await mkdtemp(join(tmpdir(), "cloister-deploy-"));
    dirs.push(dir);
    const plainPath = join(dir, "models", "tiny.gguf");
    await mkdir(join(dir, "models"));
    execFileSync("mkfifo", [plainPath]);
    await prepare(dir);
    expect(await readdir(join(dir, "models"))).toEqual(["tiny.gguf.sealed"]);
    const other = await mkdtemp(join(tmpdir(), "cloister-deploy-"));
    dirs.push(other);
    const directory = join(other, "models", "tiny.gguf");
    await mkdir(join(directory, "inside"), { recursive: true });
    const refusal = await rejectionOf(prepare(other), ModelNotRegularFileError);
    expect([refusal.code, refusal.message]).toEqual([
      "MODEL_IO",
      `model file ${directory}: expected a regular file, found a directory`,
    ]);
    expect(await readdir(directory)).toEqual(["inside"]);
    // Before any work: nothing sealed, no key made.
    expect(await readdir(join(other, "models"))).toEqual(["tiny.gguf"]);
    expect((await readdir(other)).sort()).toEqual(["models"]);
  });

  it("seals anew when the kept file does not open under the model key to the tiny model", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cloister-deploy-"));
    dirs.push(dir);
    const first = await prepare(dir);
    // One byte of the ciphertext changed: a chunk fails authentication.
    const sealed = await readFile(first.files.modelPath);
    const at = sealed.length - 20;
    sealed[at] = (sealed[at] as number) ^ 1;
    await writeFile(first.files.modelPath, sealed);
    const damaged = await prepare(dir);
    expect(damaged.progress.join("\n")).toMatch(/does not open as the tiny model \(\w+\): sealing it anew/);
    expect(damaged.sealedSha256).not.toBe(first.sealedSha256);
    // A new model key (the old one removed): the kept file is not under it.
    await rm(join(dir, "kbs", "model-key.jwk"));
    const rekeyed = await prepare(dir);
    // (The new key has the same key id: the file fails authentication under it.)
    expect(rekeyed.progress.join("\n")).toMatch(/does not open as the tiny model \(\w+\): sealing it anew/);
    expect(rekeyed.sealedSha256).not.toBe(damaged.sealedSha256);
    // And the next restart keeps that one. No decrypted copy is left behind by any of these runs.
    expect((await prepare(dir)).sealedSha256).toBe(rekeyed.sealedSha256);
    expect(await readdir(join(dir, "models"))).toEqual(["tiny.gguf.sealed"]);
  });
});

/** The mode (as "0644") of every file under `dir`, by its path relative to `dir`. */
async function modes(dir: string): Promise<Record<string, string>> {
  const found: Record<string, string> = {};
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    found[path.slice(dir.length + 1)] = `0${((await stat(path)).mode & 0o777).toString(8)}`;
  }
  return found;
}

describe("prepareDeployment (cloister up) under umask 002", () => {
  it("writes public files 0644 and secrets 0600, and a re-run sets the modes an earlier run left too wide", async () => {
    // umask 002 (group-writable files) is many Linux users' default: the key broker refused the
    // configuration up wrote under it as writable by group.
    const dir = await mkdtemp(join(tmpdir(), "cloister-deploy-umask-"));
    dirs.push(dir);
    await rm(dir, { recursive: true });
    const expected = {
      ".gitignore": "0644",
      "api-key": "0600",
      "api-keys.json": "0644",
      "kbs/config.json": "0644",
      "kbs/model-key.jwk": "0600",
      "kbs/release-policy.json": "0644",
      "manifest.jws": "0644",
      "models/tiny.gguf.sealed": "0644",
      "operator.private.jwk": "0600",
      "operator.public.jwk": "0644",
      "policy.json": "0644",
    };
    const previous = process.umask(0o002);
    try {
      const { files } = await prepare(dir);
      expect(await modes(dir)).toEqual(expected);
      expect((await loadBrokerConfig(files.kbs?.configPath as string)).keys).toHaveLength(1);
      // An earlier version's run under umask 002 left these 0664 (and .gitignore, written only when
      // up makes the directory; the sealed model was written 0644): the next run leaves them as a
      // fresh one does (an existing file keeps its mode when it is written again).
      const widened = [
        "api-keys.json",
        "kbs/config.json",
        "kbs/release-policy.json",
        "manifest.jws",
        "operator.public.jwk",
        "policy.json",
      ];
      for (const file of widened) await chmod(join(dir, file), 0o664);
      await prepare(dir);
      expect(await modes(dir)).toEqual(expected);
      expect((await loadBrokerConfig(files.kbs?.configPath as string)).keys).toHaveLength(1);
    } finally {
      process.umask(previous);
    }
  });
});

describe("prepareDeployment (cloister up) reusing secrets of an earlier run", () => {
  it("refuses a private key or API key that group or others can read or write (as ssh refuses a loose key), naming the file, its mode and the fix", async () => {
    const dir = await mkdtemp(join(tmpdir(), "cloister-deploy-secrets-"));
    dirs.push(dir);
    await prepare(dir);
    const secrets = [
      ["operator.private.jwk", "operator key", 0o640],
      ["api-key", "cloister up: API key file", 0o604],
      ["kbs/model-key.jwk", "model key", 0o620],
    ] as const;
    for (const [name, field, mode] of secrets) {
      const file = join(dir, name);
      await chmod(file, mode);
      const error = await rejectionOf(prepare(dir), UsageError);
      expect((error as Error).message).toBe(
        `${field} ${file}: mode expected 0600 (owner only), found 0${mode.toString(8)}; run chmod 600 ${file}`,
      );
      // As the message says: the next run reuses it.
      await chmod(file, 0o600);
    }
    const { files } = await prepare(dir);
    expect(files.apiKey).toBe((await readFile(join(dir, "api-key"), "utf8")).trim());
  });
});

describe("prepareDeployment (cloister up --dir) inside a git checkout", () => {
  it("a directory it creates gets a .gitignore of *, so git (and biome, which reads .gitignore) sees none of its files; one that exists is left as it is", async () => {
    const repo = await mkdtemp(join(tmpdir(), "cloister-deploy-git-"));
    dirs.push(repo);
    execFileSync("git", ["init", "-q"], { cwd: repo });
    const untracked = () =>
      execFileSync("git", ["status", "--porcelain", "--untracked-files=all"], { cwd: repo, encoding: "utf8" });
    // Its parent made too: ignoring the deployment's own directory is enough.
    await prepare(join(repo, "deployments", "dev"));
    expect(await readFile(join(repo, "deployments", "dev", ".gitignore"), "utf8")).toBe("*\n");
    expect(untracked()).toBe("");

    // A directory of the user's own (here, one with a file of theirs) gets no .gitignore of up's.
    const own = join(repo, "mine");
    await mkdir(own);
    await writeFile(join(own, "notes.txt"), "mine\n");
    await prepare(own);
    await expect(access(join(own, ".gitignore"))).rejects.toMatchObject({ code: "ENOENT" });
    expect(untracked()).toContain("mine/notes.txt");
  });
});

describe("isPerRequestLogLine (the line a child that fails as it stops is reported with)", () => {
  /** A child's stderr line as startChild reads it: without its newline. */
  const asRead = (written: string) => written.replace(/\n$/, "");
  const refusal = {
    status: 400,
    code: "REQUEST_UNREADABLE",
    message: "request unreadable (HPE_INVALID_HEADER_TOKEN)",
    method: null,
    responseBytes: 93,
  };
  const accessLines: string[] = [];
  jsonLinesAccessLog((line) => accessLines.push(line))({
    time: "2026-12-05T00:00:00.000Z",
    method: "POST",
    path: "/v1/sealed",
    status: 200,
    keyId: "k1",
    member: 0,
    requestBytes: 10,
    responseBytes: 20,
    headersMs: 1,
    durationMs: 2,
    outcome: "ok",
  });
  // As `cloister kbs serve` writes them (attestation/kbs/cli-impl.ts): one JSON line each.
  const brokerLine = (entry: BrokerLogEntry) => JSON.stringify(entry);

  it.each([
    ["the enclave's refusal before any route", asRead(refusalLogLine(refusal, "before any route"))],
    [
      "the enclave's refusal reading a body",
      asRead(refusalLogLine({ ...refusal, method: "POST" }, "reading its body")),
    ],
    ["the host's access line", asRead(accessLines[0] as string)],
    [
      "the key broker's release line",
      brokerLine({
        event: "release",
        outcome: "refused",
        keyId: null,
        code: "KBS_BUSY",
        stage: null,
        reason: "busy",
        tee: null,
        simulated: null,
        measurement: null,
        manifestDigest: null,
        documentDigest: null,
        peer: null,
        ms: 1,
      }),
    ],
    [
      "the key broker's refusal before any route",
      brokerLine({
        event: "request-refused",
        status: 408,
        code: "REQUEST_TIMEOUT",
        reason: "x",
        method: null,
        responseBytes: 0,
        peer: null,
      }),
    ],
  ])("leaves out %s", (_, line) => {
    expect(isPerRequestLogLine(line)).toBe(true);
  });

  it.each([
    "cloister enclave: stopped; could not remove the model copy /tmp/x (EBUSY): remove it by hand",
    "cloister enclave: audit record not written (EIO): refusing new sealed requests (AUDIT_FAILED) until restarted",
    "cloister host: pool: enclave 1 is gone",
    brokerLine({ event: "fault", code: "INTERNAL", reason: "answering GET /healthz: Error: boom", peer: null }),
    '{"type":"other"}',
    "{ not json",
    "null",
  ])("keeps %s", (line) => {
    expect(isPerRequestLogLine(line)).toBe(false);
  });
});
