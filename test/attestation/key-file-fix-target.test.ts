/**
 * The fix a key file's refusal ends with (attestation/kbs/key-file.ts, fixTarget) when the file was
 * opened by another path than the one its refusals name (`name`: cloister up's earlier-run secrets,
 * opened through the directory it holds): the path the open file resolves to (/proc/self/fd/M), or,
 * when that names no file to paste a command on (removed since: "… (deleted)"; no /proc; a path
 * outside this process's root, "(unreachable)/…"), "on the file at" the name, which is no command.
 * The kernel's answers are given by a mock of readlink for /proc/self/fd/ paths only; the file, its
 * open and its checks are real. Tests run as root.
 */
import * as fs from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { rejectionOf } from "../helpers/rejections.ts";
import { testDirectory } from "../helpers/test-directory.ts";

/** What readlink of /proc/self/fd/M answers: the kernel's ("real"), a path given, or an error. */
const answer = vi.hoisted((): { of: "real" | { path: string } | { error: string } } => ({ of: "real" }));

vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  const { fsWith } = await import("../helpers/foreign-link.ts");
  const readlink = (async (file: string, options?: unknown) => {
    if (!String(file).startsWith("/proc/self/fd/") || answer.of === "real") {
      return real.readlink(file, options as Parameters<typeof real.readlink>[1]);
    }
    if ("path" in answer.of) return answer.of.path;
    throw Object.assign(new Error(`${answer.of.error}: readlink '${file}'`), { code: answer.of.error });
  }) as typeof real.readlink;
  return fsWith(real, { readlink });
});

const { readPrivateKeyFile } = await import("../../attestation/kbs/key-file.ts");

const dir = await testDirectory("cloister-key-file-fix-target-");
afterEach(() => {
  answer.of = "real";
});

/** A key file of mode 0644 in a directory reached through a link (`by`), and the path it really has. */
async function looseKeyFile(name: string): Promise<{ by: string; really: string }> {
  const real = join(dir, `${name}-real`);
  await fs.mkdir(real, { mode: 0o700 });
  const really = join(real, "model-key.jwk");
  await fs.writeFile(really, "{}\n");
  await fs.chmod(really, 0o644);
  await fs.symlink(real, join(dir, `${name}-by`));
  return { by: join(dir, `${name}-by`, "model-key.jwk"), really };
}

const named = "shown/model-key.jwk";
const read = (path: string, uid?: number) =>
  rejectionOf(readPrivateKeyFile(path, "cloister up: model key", { held: null, name: named, uid }), Error);

describe("a key file read by another path than its name: the fix names the file opened", () => {
  it("the path the open file resolves to (no link in it), not the name nor the path opened", async () => {
    const { by, really } = await looseKeyFile("resolved");
    const error = await read(by);
    expect(error.message).toBe(
      `cloister up: model key ${named}: mode expected 0600 (owner only), found 0644; run chmod 600 ${really}`,
    );
  });

  for (const [what, of] of [
    ["removed since it was opened (… (deleted))", { path: "/gone/model-key.jwk (deleted)" }],
    ["outside this process's root ((unreachable)/…)", { path: "(unreachable)/x/model-key.jwk" }],
    ["no /proc (ENOENT)", { error: "ENOENT" }],
  ] as const) {
    it(`"on the file at" the name, no command, when it resolves to no path: ${what}`, async () => {
      const { by } = await looseKeyFile(what.replace(/\W+/g, "-"));
      answer.of = of;
      const error = await read(by);
      expect(error.message).toBe(
        `cloister up: model key ${named}: mode expected 0600 (owner only), found 0644; run chmod 600 on the file at ${named}`,
      );
    });
  }

  it('a chown fix too: "chown UID on the file at" the name when it resolves to no path', async () => {
    const { by, really } = await looseKeyFile("owned");
    await fs.chown(really, 4244, 4244);
    answer.of = { error: "ENOENT" };
    const error = await read(by, 1234);
    expect(error.message).toContain(
      `owned by uid 4244; expected this user's (uid 1234) or root's, since its owner can rewrite it (chown 1234 on the file at ${named})`,
    );
    expect(error.message).toMatch(
      /; also mode expected 0600 \(owner only\), found 0644; run chmod 600 on the file at /,
    );
  });
});
