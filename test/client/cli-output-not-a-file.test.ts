/**
 * An output file's name holding a FIFO, a socket or a device (client/cli/output.ts
 * refuseExistingFile): refused before any work, with --force or without, and left as it was. The
 * rename that --force replaces with would replace it: as root, `model make tiny --out /dev/null
 * --force` replaced /dev/null. A device node with /dev/null's numbers is made here (tests run as
 * root); /dev is not touched. Nothing opens the FIFO, so nothing waits on it.
 */
import { execFileSync } from "node:child_process";
import { lstat } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { refuseExistingOutput, UsageError } from "../../client/cli/output.ts";
import { keygenCommand } from "../../manifests/cli-impl.ts";
import { ManifestFileError } from "../../manifests/errors.ts";
import { runCloister } from "../helpers/cli.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { testDirectory } from "../helpers/test-directory.ts";

const dir = await testDirectory("cloister-output-not-a-file-");

/** The socket servers specials() opened, closed after each test. */
const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await new Promise<void>((resolve) => server.close(() => resolve()));
});

/** A FIFO, a character device and a socket in `dir`, each with what describeFileKind calls it. */
async function specials(tag: string): Promise<{ path: string; found: string }[]> {
  const fifo = join(dir, `${tag}-fifo.out`);
  execFileSync("mkfifo", [fifo]);
  const device = join(dir, `${tag}-device.out`);
  execFileSync("mknod", [device, "c", "1", "3"]);
  const socket = join(dir, `${tag}-socket.out`);
  const server = createServer();
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  return [
    { path: fifo, found: "a FIFO" },
    { path: device, found: "a character device" },
    { path: socket, found: "a socket" },
  ];
}

/** Whether `path` is still the special file it was (not replaced by a regular file). */
const stillSpecial = async (path: string) => !(await lstat(path)).isFile();

describe("an output file's name holding a FIFO, socket or device", () => {
  it("refuseExistingOutput refuses it with or without --force, naming what it found", async () => {
    for (const { path, found: kind } of await specials("check")) {
      for (const existing of ["replace", "refuse"] as const) {
        const refusal = await rejectionOf(refuseExistingOutput(path, "--out", existing), UsageError);
        expect(refusal.message).toBe(`--out ${path}: expected a regular file, found ${kind}`);
        expect(await stillSpecial(path)).toBe(true);
      }
    }
  });

  it("cloister manifest keygen --force refuses it (MANIFEST_FILE), writing neither key", async () => {
    const [fifo] = await specials("keygen");
    const outPublic = join(dir, "keygen.pub.jwk");
    const refusal = await rejectionOf(
      keygenCommand({ outPrivate: fifo!.path, outPublic, alg: "EdDSA", force: true }),
      ManifestFileError,
    );
    expect([refusal.code, refusal.message]).toEqual([
      "MANIFEST_FILE",
      `--out-private ${fifo!.path}: expected a regular file, found a FIFO`,
    ]);
    expect(await stillSpecial(fifo!.path)).toBe(true);
    await expect(lstat(outPublic)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("cloister model make tiny --out DEVICE --force exits 2 and leaves the device there", async () => {
    const [, device] = await specials("make");
    const run = await runCloister(["model", "make", "tiny", "--out", device!.path, "--force"], { cwd: dir });
    expect([run.code, run.stdout, run.stderr]).toEqual([
      2,
      "",
      `cloister: USAGE: --out ${device!.path}: expected a regular file, found a character device\n`,
    ]);
    expect((await lstat(device!.path)).isCharacterDevice()).toBe(true);
  });
});
