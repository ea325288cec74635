/**
 * A --policy file (the client's trust anchor) and the secrets the CLI reads (an API key file, the
 * proxy's token) are refused when someone else could change them (attestation/path-safety.ts
 * readAfterPathCheck and unsafeOpenFile): the policy when another user owns it, when others (or a
 * group not root's nor this user's) may write to it, or when anyone may write to a directory its
 * lookup goes through without the sticky bit; a secret for such a directory (its own owner and mode
 * are checked by its reader).
 * Tests run as root: other owners are uids 4242-4244.
 */
import { spawn } from "node:child_process";
import { chmod, chown, mkdir, open, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { UsageError } from "../../client/cli/output.ts";
import { readApiKey, readPolicyFile } from "../../client/cli/run-client.ts";
import { localToken } from "../../client/cli/run-proxy.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { testDirectoryEach } from "../helpers/test-directory.ts";
import { devPolicy } from "./helpers.ts";

let root = "";
testDirectoryEach("cloister-trust-files-", (dir) => {
  root = dir;
});

const refusal = (promise: Promise<unknown>): Promise<Error> => rejectionOf(promise, Error);

/** A valid policy file of `mode` in root/`dir` (made 0755). */
async function policyIn(dir: string, mode: number): Promise<string> {
  await mkdir(join(root, dir), { recursive: true, mode: 0o755 });
  const file = join(root, dir, "policy.json");
  await writeFile(file, JSON.stringify(await devPolicy()));
  await chmod(file, mode);
  return file;
}

describe("--policy FILE", () => {
  it("reads a policy of this user's that only it can write, below a sticky directory anyone may write to", async () => {
    const file = await policyIn("sticky", 0o644);
    await chmod(join(root, "sticky"), 0o1777);
    expect((await readPolicyFile(file)).policy).toBeDefined();
  });

  it("refuses a policy below a directory anyone may write to, naming that directory, its mode and the fix", async () => {
    const file = await policyIn("x", 0o644);
    const open = join(root, "x");
    await chmod(open, 0o777);
    const error = await refusal(readPolicyFile(file));
    expect(error).toBeInstanceOf(UsageError);
    expect(error.message).toBe(
      `--policy ${file}: expected no directory on its path that others can write to, found one (the directory ${open} mode 0777): anyone could put their own file in its place, and with it which enclaves this client trusts; chmod o-w ${open} (or set its sticky bit)`,
    );
    // Reached through a link in such a directory: the link can be pointed elsewhere.
    await chmod(open, 0o755);
    await mkdir(join(root, "open"), { mode: 0o777 });
    await chmod(join(root, "open"), 0o777);
    await symlink(file, join(root, "open", "policy.json"));
    expect((await refusal(readPolicyFile(join(root, "open", "policy.json")))).message).toContain(
      `(the directory ${join(root, "open")} mode 0777)`,
    );
  });

  it("refuses a policy others, or another group, may write to, with the chmod that fixes it", async () => {
    const file = await policyIn("d", 0o666);
    expect((await refusal(readPolicyFile(file))).message).toBe(
      `--policy ${file}: expected a file others cannot write to, found mode 0666: anyone could rewrite it, and with it which enclaves this client trusts; chmod o-w ${file}`,
    );
    await chmod(file, 0o664);
    await chown(file, 0, 4243);
    expect((await refusal(readPolicyFile(file))).message).toBe(
      `--policy ${file}: expected a file others cannot write to, found mode 0664: group 4243 could rewrite it, and with it which enclaves this client trusts; chmod g-w ${file}`,
    );
    // Root's group (or this user's own) may write to it.
    await chown(file, 0, 0);
    expect((await readPolicyFile(file)).policy).toBeDefined();
  });

  it("refuses a policy another user owns (its owner can rewrite it), saying why and how to fix it", async () => {
    const file = await policyIn("d", 0o644);
    await chown(file, 4244, 0);
    const uid = process.getuid?.() ?? 0;
    expect((await refusal(readPolicyFile(file))).message).toBe(
      `--policy ${file}: expected a file owned by root or this user (uid ${uid}), found one owned by uid 4244 (mode 0644): uid 4244 could rewrite it, and with it which enclaves this client trusts; chown root ${file}, or copy it to a file of this user's`,
    );
  });

  it("says a missing policy is missing, not that its path is unsafe", async () => {
    const missing = join(root, "none", "policy.json");
    expect((await refusal(readPolicyFile(missing))).message).toContain(`--policy ${missing}: cannot read (`);
  });
});

describe("secret files", () => {
  it("refuses a proxy token below a directory anyone may write to", async () => {
    const open = join(root, "open");
    await mkdir(open, { mode: 0o755 });
    const file = join(open, "proxy-token");
    const made = await localToken(file);
    expect(await localToken(file)).toEqual({ token: made.token, created: false });
    await chmod(open, 0o777);
    expect((await refusal(localToken(file))).message).toBe(
      `--token-file ${file}: expected no directory on its path that others can write to, found one (the directory ${open} mode 0777): anyone could put their own file in its place, and with it the proxy's token; chmod o-w ${open} (or set its sticky bit)`,
    );
  });

  it("refuses an --api-key-file below a directory anyone may write to", async () => {
    const open = join(root, "open");
    await mkdir(open, { mode: 0o777 });
    await chmod(open, 0o777);
    const file = join(open, "api-key");
    await writeFile(file, "ck_test_key\n", { mode: 0o600 });
    const error = await refusal(readApiKey(file, "http://127.0.0.1:47001"));
    expect(error).toBeInstanceOf(UsageError);
    expect(error.message).toContain(
      `--api-key-file ${file}: expected no directory on its path that others can write to`,
    );
    await chmod(open, 0o1777);
    expect((await readApiKey(file, "http://127.0.0.1:47001")).key).toBe("ck_test_key");
  });
});

describe("--policy from a pipe", () => {
  it("reads a pipe another user's shell made (`cat policy.json | sudo cloister chat --policy /dev/stdin`): its writer is who the invoker chose, not its owner", async () => {
    // uid 4244's shell makes the pipe (so it owns it) and feeds it to a process that waits; this
    // process, root, opens it through that process's fd 0 and reads it as its own fd (/proc/self/fd,
    // links of root's), as a command run by sudo reads its /dev/stdin. Named by the other process's
    // fd 0 instead, it is refused: that link is uid 4244's, who may point it elsewhere.
    let pid = "";
    const child = spawn("sh", ["-c", 'printf "%s" "$POLICY" | sh -c \'echo $$; exec sleep 30\''], {
      uid: 4244,
      gid: 4244,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", POLICY: JSON.stringify(await devPolicy()) },
      stdio: ["ignore", "pipe", "inherit"],
    });
    try {
      pid = await new Promise<string>((resolve) => child.stdout.once("data", (data) => resolve(String(data).trim())));
      const theirs = `/proc/${pid}/fd/0`;
      expect((await refusal(readPolicyFile(theirs))).message).toContain(`found the link ${theirs} owned by uid 4244`);
      const handle = await open(theirs, "r");
      try {
        expect((await readPolicyFile(`/proc/self/fd/${handle.fd}`)).policy).toBeDefined();
      } finally {
        await handle.close();
      }
    } finally {
      if (pid !== "") process.kill(Number(pid));
      child.kill();
    }
  });
});

describe("--policy from a file open and unlinked (a here-document)", () => {
  it("reads it through this process's fd (zsh's here-strings and bash's here-documents before 5.1 are such files: /proc/self/fd says `… (deleted)`)", async () => {
    const file = await policyIn("heredoc", 0o600);
    const handle = await open(file, "r");
    try {
      await rm(file);
      expect((await readPolicyFile(`/proc/self/fd/${handle.fd}`)).policy).toBeDefined();
    } finally {
      await handle.close();
    }
  });
});
