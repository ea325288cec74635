/**
 * Every refusal of the API key the CLI prints says where the key came from (`--api-key-file F`,
 * CLOISTER_API_KEY), never the key: the host's refusal after a successful connect (a chat's sealed
 * request, an audit checkpoint, policy init's check), and a key the SDK finds malformed before it
 * is sent (BAD_API_KEY), which names the option, variable or file, not the SDK's `apiKey`.
 */
import { execFileSync } from "node:child_process";
import { chmod, mkdir, mkdtemp, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { readApiKeyOfEarlierRun } from "../../client/cli/deploy.ts";
import { operatorPublicKey } from "../enclave/helpers.ts";
import { runCloister } from "../helpers/cli.ts";
import { inProcessCli } from "../helpers/cli-in-process.ts";
import { testDirectory } from "../helpers/test-directory.ts";
import { closeServers, devPolicy, serveDeployment } from "./helpers.ts";

const run = inProcessCli();
const FILE_KEY = "ck_file_key_0123456789abcdef";
const ENV_KEY = "ck_env_key_0123456789abcdef";
const dir = await testDirectory("cloister-api-key-source-");
let keyFile: string;
let policy: string;
let operatorKey: string;

beforeAll(async () => {
  keyFile = join(dir, "api-key");
  await writeFile(keyFile, `${FILE_KEY}\n`, { mode: 0o600 });
  policy = join(dir, "policy.json");
  await writeFile(policy, JSON.stringify(await devPolicy()));
  operatorKey = join(dir, "operator.public.jwk");
  await writeFile(operatorKey, JSON.stringify(await operatorPublicKey()));
});
afterEach(async () => {
  vi.unstubAllEnvs();
  await closeServers();
});

/** What the user gives: the option, or only the variable. */
const SOURCES = [
  {
    name: "--api-key-file",
    args: () => ["--api-key-file", keyFile],
    key: FILE_KEY,
    source: () => `--api-key-file ${keyFile}`,
  },
  { name: "CLOISTER_API_KEY", args: () => [], key: ENV_KEY, source: () => "CLOISTER_API_KEY" },
];

function expectNoKey(text: string): void {
  for (const key of [FILE_KEY, ENV_KEY]) expect(text).not.toContain(key);
}

describe("the host refuses the key after a successful connect: the source is named", () => {
  it.each(SOURCES)("chat's sealed request (key from $name)", async ({ args, key, source }) => {
    vi.stubEnv("CLOISTER_API_KEY", ENV_KEY);
    const { url, authorizations } = await serveDeployment({ refuse: (path) => path === "/v1/sealed" });
    const result = await run(["chat", "--url", url, "--policy", policy, ...args(), "hello"]);
    expect(authorizations.every((a) => a === `Bearer ${key}`)).toBe(true);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("cloister: UNAUTHENTICATED: host refused the API key: host said:");
    expect(result.stderr).toContain(`the key sent came from ${source()}`);
    expectNoKey(`${result.stdout}${result.stderr}`);
  });

  it.each(SOURCES)("chat --json (key from $name)", async ({ args, source }) => {
    vi.stubEnv("CLOISTER_API_KEY", ENV_KEY);
    const { url } = await serveDeployment({ refuse: (path) => path === "/v1/sealed" });
    const result = await run(["chat", "--url", url, "--policy", policy, ...args(), "--json", "hello"]);
    expect(result.code).toBe(1);
    const out = JSON.parse(result.stdout) as { error: { code: string; reason: string } };
    expect(out.error.code).toBe("UNAUTHENTICATED");
    expect(out.error.reason).toContain(`the key sent came from ${source()}`);
    expectNoKey(`${result.stdout}${result.stderr}`);
  });

  it.each(SOURCES)("audit checkpoint (key from $name)", async ({ args, source }) => {
    vi.stubEnv("CLOISTER_API_KEY", ENV_KEY);
    const { url } = await serveDeployment({ refuse: (path) => path === "/v1/audit/checkpoint" });
    const result = await run(["audit", "checkpoint", "--url", url, "--policy", policy, ...args()]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("UNAUTHENTICATED: host refused the API key");
    expect(result.stderr).toContain(`the key sent came from ${source()}`);
    expectNoKey(`${result.stdout}${result.stderr}`);
  });

  it.each(SOURCES)("policy init's check of the policy it made (key from $name)", async ({ args, source }) => {
    vi.stubEnv("CLOISTER_API_KEY", ENV_KEY);
    // The first attestation answers (the values pinned); the check's own is refused.
    const { url } = await serveDeployment({ refuse: (path, n) => path === "/v1/attestation" && n > 0 });
    const result = await run([
      "policy",
      "init",
      "--url",
      url,
      "--operator-key",
      operatorKey,
      ...args(),
      "--allow-simulator",
    ]);
    expect(result.code).toBe(1);
    // The check's connect is a new client's first request: the refusal is not said to be the host's.
    expect(result.stderr).toContain("HTTP 401: the API key was refused: the server at that URL said:");
    expect(result.stderr).toContain(`the key sent came from ${source()}`);
    expectNoKey(`${result.stdout}${result.stderr}`);
  });
});

describe("a malformed key (BAD_API_KEY) is named by where it came from, with what a key looks like", () => {
  it("--api-key-file holding a key with a space, or nothing", async () => {
    vi.stubEnv("CLOISTER_API_KEY", "");
    const spaced = join(dir, "spaced.key");
    await writeFile(spaced, "ck_copied with_text\n", { mode: 0o600 });
    expect(await run(["attest", "--url", "http://127.0.0.1:9", "--policy", policy, "--api-key-file", spaced])).toEqual({
      code: 2,
      stdout: "",
      stderr: `cloister: BAD_API_KEY: --api-key-file ${spaced}: expected printable ASCII without white space (it is sent in an HTTP header), found a string of 19 characters with 1 space (a key copied with the text around it?)\n`,
    });
    const empty = join(dir, "empty.key");
    await writeFile(empty, "\n", { mode: 0o600 });
    expect(await run(["attest", "--url", "http://127.0.0.1:9", "--policy", policy, "--api-key-file", empty])).toEqual({
      code: 2,
      stdout: "",
      stderr: `cloister: BAD_API_KEY: --api-key-file ${empty}: expected the host's API key (a non-empty string of printable ASCII without white space), found an empty string\n`,
    });
  });

  it("CLOISTER_API_KEY with a tab", async () => {
    vi.stubEnv("CLOISTER_API_KEY", "ck_env\tkey");
    const result = await run(["attest", "--url", "http://127.0.0.1:9", "--policy", policy]);
    expect(result).toEqual({
      code: 2,
      stdout: "",
      stderr:
        "cloister: BAD_API_KEY: CLOISTER_API_KEY: expected printable ASCII without white space (it is sent in an HTTP header), found a string of 10 characters with 1 tab\n",
    });
  });
});

describe("CLOISTER_API_KEY set but empty is refused naming it, as an empty --api-key-file is", () => {
  const EMPTY =
    "cloister: BAD_API_KEY: CLOISTER_API_KEY: expected the host's API key (a non-empty string of printable ASCII without white space), found an empty string\n";

  it.each([
    ["attest, a loopback URL (not the default key file instead)", ["attest", "--url", "http://127.0.0.1:9"]],
    ["attest, another host", ["attest", "--url", "https://192.0.2.1:9"]],
    ["policy init", ["policy", "init", "--url", "http://127.0.0.1:9"]],
  ])("%s", async (_name, args) => {
    vi.stubEnv("CLOISTER_API_KEY", "");
    const more = args[0] === "policy" ? ["--operator-key", operatorKey] : ["--policy", policy];
    expect(await run([...args, ...more])).toEqual({ code: 2, stdout: "", stderr: EMPTY });
  });

  it("an --api-key-file given wins over it, as over any CLOISTER_API_KEY", async () => {
    vi.stubEnv("CLOISTER_API_KEY", "");
    const { url, authorizations } = await serveDeployment({ refuse: () => true });
    const result = await run(["attest", "--url", url, "--policy", policy, "--api-key-file", keyFile]);
    expect(result.stderr).toContain(`the key sent came from --api-key-file ${keyFile}`);
    expect(authorizations).toEqual([`Bearer ${FILE_KEY}`]);
  });
});

describe("a key file that cannot be read is named as the user gave it", () => {
  it("an --api-key-file that does not exist: no advice to pass the option just passed", async () => {
    vi.stubEnv("CLOISTER_API_KEY", ENV_KEY);
    const missing = join(dir, "missing.key");
    expect(await run(["attest", "--url", "http://127.0.0.1:9", "--policy", policy, "--api-key-file", missing])).toEqual(
      {
        code: 2,
        stdout: "",
        stderr: `cloister: USAGE: --api-key-file ${missing}: cannot read (ENOENT: no such file; check the path)\n`,
      },
    );
  });

  it("no option, no variable, and no cloister up in this directory: the default file is named as the default", async () => {
    const { CLOISTER_API_KEY: _unset, ...env } = process.env;
    const result = await runCloister(["attest", "--url", "http://127.0.0.1:9", "--policy", policy], { cwd: dir, env });
    expect(result).toEqual({
      code: 2,
      stdout: "",
      stderr:
        "cloister: USAGE: no API key: the default key file .cloister/api-key cannot be read (ENOENT: no such file; check the path): " +
        "it is the one cloister up writes in the directory it runs in; pass --api-key-file or set CLOISTER_API_KEY\n",
    });
  });
});

describe("a key file others can read or change is refused, as cloister up refuses its reused key", () => {
  it.each([
    ["attest", "644"],
    ["chat", "640"],
    ["proxy", "620"],
  ])(
    "%s --api-key-file at mode 0%s: exit 2, naming the file, its mode and the fix, before anything is sent",
    async (command, mode) => {
      const loose = join(dir, `loose-${mode}.key`);
      await writeFile(loose, `${FILE_KEY}\n`);
      await chmod(loose, Number.parseInt(mode, 8));
      const args = [command, "--url", "http://127.0.0.1:9", "--policy", policy, "--api-key-file", loose];
      expect(await run(command === "chat" ? [...args, "hello"] : args)).toEqual({
        code: 2,
        stdout: "",
        stderr: `cloister: USAGE: --api-key-file ${loose}: mode expected 0600 (owner only), found 0${mode}; run chmod 600 ${loose}\n`,
      });
    },
  );

  it("a link to the key file is followed, and its target checked (a Kubernetes secret volume mounts links)", async () => {
    // A secret volume's file is a link into ..data/; the mode and owner that count are the target's.
    const target = join(dir, "linked-target.key");
    const link = join(dir, "linked.key");
    await writeFile(target, `${FILE_KEY}\n`, { mode: 0o600 });
    await symlink(target, link);
    const args = ["attest", "--url", "http://127.0.0.1:9", "--policy", policy, "--api-key-file", link];
    const followed = await run(args);
    expect(followed.stderr).not.toContain("USAGE");
    expect(followed.stderr).toContain("HOST_UNREACHABLE");
    await chmod(target, 0o644);
    expect(await run(args)).toEqual({
      code: 2,
      stdout: "",
      stderr: `cloister: USAGE: --api-key-file ${link}: mode expected 0600 (owner only), found 0644; run chmod 600 ${link}\n`,
    });
  });

  it("a link that leads to no file is named as unreadable, not as a link refused (links are followed)", async () => {
    // ELOOP with links followed is a loop of links, not the O_NOFOLLOW refusal of a key file itself.
    const loop = join(dir, "loop.key");
    await symlink(loop, loop);
    expect(await run(["attest", "--url", "http://127.0.0.1:9", "--policy", policy, "--api-key-file", loop])).toEqual({
      code: 2,
      stdout: "",
      stderr: `cloister: USAGE: --api-key-file ${loop}: cannot read (ELOOP: a loop of links; check where the link points)\n`,
    });
  });

  it("a link to a directory or a FIFO is still refused: the target must be a regular file", async () => {
    const folder = join(dir, "key-dir");
    const fifo = join(dir, "key-fifo");
    await mkdir(folder);
    execFileSync("mkfifo", ["-m", "600", fifo]);
    for (const target of [folder, fifo]) {
      const link = join(dir, `link-to-${target === folder ? "dir" : "fifo"}.key`);
      await symlink(target, link);
      expect(await run(["attest", "--url", "http://127.0.0.1:9", "--policy", policy, "--api-key-file", link])).toEqual({
        code: 2,
        stdout: "",
        stderr: `cloister: USAGE: --api-key-file ${link}: not a regular file\n`,
      });
    }
  });

  it("cloister up's own key file is still refused as a link", async () => {
    const target = join(dir, "up-target.key");
    const link = join(dir, "up-link.key");
    await writeFile(target, `${FILE_KEY}\n`, { mode: 0o600 });
    await symlink(target, link);
    await expect(readApiKeyOfEarlierRun(link)).rejects.toThrow(
      `cloister up: API key file ${link}: a symbolic link; expected the key file itself`,
    );
  });

  it("the default key file, one cloister up writes, is refused as a link (only --api-key-file follows links)", async () => {
    const cwd = await mkdtemp(join(dir, "up-link-"));
    await mkdir(join(cwd, ".cloister"));
    await writeFile(join(cwd, "target.key"), `${FILE_KEY}\n`, { mode: 0o600 });
    await symlink(join(cwd, "target.key"), join(cwd, ".cloister", "api-key"));
    const { CLOISTER_API_KEY: _unset, ...env } = process.env;
    expect(await runCloister(["attest", "--url", "http://127.0.0.1:9", "--policy", policy], { cwd, env })).toEqual({
      code: 2,
      stdout: "",
      stderr: `cloister: USAGE: the default key file .cloister/api-key: a symbolic link; expected the key file itself\n`,
    });
  });

  it("the default key file too", async () => {
    const cwd = await mkdtemp(join(dir, "up-"));
    await mkdir(join(cwd, ".cloister"));
    await writeFile(join(cwd, ".cloister", "api-key"), `${FILE_KEY}\n`, { mode: 0o644 });
    await chmod(join(cwd, ".cloister", "api-key"), 0o644);
    const { CLOISTER_API_KEY: _unset, ...env } = process.env;
    expect(await runCloister(["attest", "--url", "http://127.0.0.1:9", "--policy", policy], { cwd, env })).toEqual({
      code: 2,
      stdout: "",
      stderr: `cloister: USAGE: the default key file .cloister/api-key: mode expected 0600 (owner only), found 0644; run chmod 600 .cloister/api-key\n`,
    });
  });
});

describe("a --policy file that does not exist", () => {
  it("says how to get one", async () => {
    const missing = join(dir, "missing.json");
    expect(
      await run(["attest", "--url", "http://127.0.0.1:9", "--policy", missing, "--api-key-file", keyFile]),
    ).toEqual({
      code: 2,
      stdout: "",
      stderr: `cloister: USAGE: --policy ${missing}: cannot read (ENOENT: no such file; check the path): expected a client policy: cloister up writes .cloister/policy.json, cloister policy init makes one\n`,
    });
  });
});
