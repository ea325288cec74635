/**
 * The GGUF writer's output (`model make --out`, `model make bench`, and `cloister up`'s plain
 * models/tiny.gguf, which no --force check guards) is written by a rename onto its name: a FIFO,
 * socket, device or directory there is refused before any work (ModelNotRegularFileError, MODEL_IO,
 * bad input), left as it was, and no partial file is left; a symbolic link is replaced (the link,
 * never what it leads to), as a file is. As root, a rename would replace a device node.
 */
import { execFileSync } from "node:child_process";
import { lstat, mkdir, mkdtemp, readdir, readFile, symlink, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { isModelBadInput, type ModelError, ModelNotRegularFileError } from "../../models/errors.ts";
import { type GgufMetadata, type GgufTensorSpec, writeGguf } from "../../models/gguf-write.ts";
import { TINY_MODEL_SHA256, writeTinyModel } from "../../models/tiny.ts";
import { testDirectory } from "../helpers/test-directory.ts";

const dir = await testDirectory("cloister-gguf-output-");

const METADATA: GgufMetadata = [["general.architecture", { type: "STRING", value: "llama" }]];
const TENSORS: (GgufTensorSpec & { readonly data: Float32Array })[] = [
  { name: "a", type: "F32", dims: [4], data: new Float32Array(4) },
];
const write = (path: string) => writeGguf(path, METADATA, TENSORS);

/** What writing `path` was refused with (null: it was written). */
const refusal = (written: Promise<unknown>) =>
  written.then(
    () => null,
    (caught: unknown) => caught as ModelError,
  );

describe("GGUF writer: what is at the output's name", () => {
  it("a FIFO, socket, character device or directory is refused before any work, left as it was", async () => {
    const sub = await mkdtemp(join(dir, "not-a-file-"));
    const fifo = join(sub, "fifo.gguf");
    execFileSync("mkfifo", [fifo]);
    // A device node with /dev/null's numbers, made here (tests run as root); /dev is not touched.
    const device = join(sub, "device.gguf");
    execFileSync("mknod", [device, "c", "1", "3"]);
    const directory = join(sub, "directory.gguf");
    await mkdir(join(directory, "inside"), { recursive: true });
    const socket = join(sub, "socket.gguf");
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(socket, resolve));
    onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const cases: [string, string, (path: string) => Promise<boolean>][] = [
      [fifo, "a FIFO", async (path) => (await lstat(path)).isFIFO()],
      [device, "a character device", async (path) => (await lstat(path)).isCharacterDevice()],
      [socket, "a socket", async (path) => (await lstat(path)).isSocket()],
      [directory, "a directory", async (path) => (await readdir(path)).join() === "inside"],
    ];
    for (const [target, found, stillThere] of cases) {
      // writeTinyModel is what `cloister up` writes models/tiny.gguf with.
      for (const writer of [write, writeTinyModel]) {
        const error = await refusal(writer(target));
        expect(error).toBeInstanceOf(ModelNotRegularFileError);
        expect(error?.code).toBe("MODEL_IO");
        expect(error?.message).toBe(`model file ${target}: expected a regular file, found ${found}`);
        expect(isModelBadInput(error as ModelError)).toBe(true);
        expect(await stillThere(target)).toBe(true);
      }
    }
    expect((await readdir(sub)).sort()).toEqual(["device.gguf", "directory.gguf", "fifo.gguf", "socket.gguf"]);
  });

  it("a symbolic link is replaced (the link, not its target), as a file is", async () => {
    const sub = await mkdtemp(join(dir, "link-"));
    const pointed = join(sub, "pointed.bin");
    await writeFile(pointed, "the link's target");
    const target = join(sub, "tiny.gguf");
    await symlink(pointed, target);
    expect((await writeTinyModel(target)).sha256).toBe(TINY_MODEL_SHA256);
    expect((await lstat(target)).isFile()).toBe(true);
    expect(await readFile(pointed, "utf8")).toBe("the link's target");
    await writeFile(target, "an earlier model");
    await write(target);
    expect((await readFile(target)).subarray(0, 4).toString("latin1")).toBe("GGUF");
  });
});
