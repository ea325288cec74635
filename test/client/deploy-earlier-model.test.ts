/**
 * cloister up's open of an earlier run's model file (client/cli/deploy.ts, openEarlierModel), watched
 * through node:fs/promises (wrapped: test/helpers/watched-opens.ts): the plain and the
 * sealed model a re-run finds are opened read-only, without following a link, non-blocking and
 * without taking a terminal (O_NOCTTY), and kept when they are the tiny model; a read of the sealed
 * model's header that fails stops `up` as MODEL_IO naming the file, not as a bare errno error; a close
 * of that read-only handle that fails (models/hash.ts closeModelInput) neither stops `up` nor
 * replaces the error on its way.
 */
import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { mkdtemp, readFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { prepareDeployment } from "../../client/cli/deploy.ts";
import { ModelIoError } from "../../models/errors.ts";
import { testDirectory } from "../helpers/test-directory.ts";
import { clearOpenWatch, type OpenWatch } from "../helpers/watched-opens.ts";

/** Every open made (path, flags, closed): the model files' are those named tiny.gguf…. */
const watch = vi.hoisted((): OpenWatch => ({ opens: [], afterStat: new Map(), fstatFails: new Set() }));
/** The names (last part) whose handle's reads fail (EIO), as a disk error would. */
const readFails = vi.hoisted(() => new Set<string>());
/** The names (last part) whose handle's fstat fails (EIO). */
const statFails = vi.hoisted(() => new Set<string>());
/** The names (last part) whose handle's close fails (EIO), after closing. */
const closeFails = vi.hoisted(() => new Set<string>());

vi.mock("node:fs/promises", async (importOriginal) => {
  const { basename } = await import("node:path");
  const { watchOpens } = await import("../helpers/watched-opens.ts");
  const { fsWith } = await import("../helpers/foreign-link.ts");
  const watched = watchOpens(await importOriginal(), watch);
  const open = (async (...args: Parameters<typeof watched.open>) => {
    const handle = await watched.open(...args);
    if (readFails.has(basename(String(args[0])))) {
      handle.read = (async () => {
        throw Object.assign(new Error("EIO: i/o error, read"), { code: "EIO" });
      }) as typeof handle.read;
    }
    if (statFails.has(basename(String(args[0])))) {
      handle.stat = (async () => {
        throw Object.assign(new Error("EIO: i/o error, fstat"), { code: "EIO" });
      }) as typeof handle.stat;
    }
    if (closeFails.has(basename(String(args[0])))) {
      const close = handle.close.bind(handle);
      handle.close = async () => {
        await close();
        throw Object.assign(new Error("EIO: i/o error, close"), { code: "EIO" });
      };
    }
    return handle;
  }) as typeof watched.open;
  return fsWith(watched, { open });
});

const root = await testDirectory("cloister-deploy-earlier-");

afterEach(() => {
  clearOpenWatch(watch);
  readFails.clear();
  statFails.clear();
  closeFails.clear();
});

/** The opens of a model file (tiny.gguf, tiny.gguf.sealed, by the name's last part), with their flags. */
const modelOpens = () =>
  watch.opens
    .map((call) => ({ name: basename(call.path), flags: call.flags, closed: call.closed }))
    .filter((call) => call.name.startsWith("tiny.gguf"));

const EARLIER_MODEL_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY;

async function prepare(dir: string, sealedModel: boolean) {
  const files = await prepareDeployment({ dir, tee: "sim-snp", threads: 1, progress: () => {}, sealedModel });
  return {
    files,
    sha256: createHash("sha256")
      .update(await readFile(files.modelPath))
      .digest("hex"),
  };
}

describe("prepareDeployment (cloister up) re-run: the earlier run's model file", () => {
  it.each([
    ["plain", false],
    ["sealed", true],
  ] as const)("opens the %s model with O_NOFOLLOW, O_NONBLOCK and O_NOCTTY, and keeps it", async (_kind, sealed) => {
    const dir = await mkdtemp(join(root, "run-"));
    const first = await prepare(dir, sealed);
    clearOpenWatch(watch);
    const second = await prepare(dir, sealed);
    expect(second.sha256).toBe(first.sha256);
    const name = basename(first.files.modelPath);
    // Kept: its one open is the check's (nothing written, nothing sealed anew).
    expect(modelOpens()).toEqual([{ name, flags: EARLIER_MODEL_FLAGS, closed: true }]);
  });

  it("stops on a sealed model whose header cannot be read: MODEL_IO naming the file (EIO), not a bare errno error", async () => {
    const dir = await mkdtemp(join(root, "run-"));
    const first = await prepare(dir, true);
    readFails.add(basename(first.files.modelPath));
    const failed = await prepare(dir, true).then(
      () => null,
      (error: unknown) => error,
    );
    expect(failed).toBeInstanceOf(ModelIoError);
    expect(failed).toMatchObject({ code: "MODEL_IO", path: first.files.modelPath });
    expect((failed as Error).message).toBe(`model file ${first.files.modelPath}: cannot read (EIO)`);
  });

  it.each([
    ["plain", false],
    ["sealed", true],
  ] as const)(
    "keeps the %s model when the close of its read-only handle fails (nothing written through it)",
    async (_kind, sealed) => {
      const dir = await mkdtemp(join(root, "run-"));
      const first = await prepare(dir, sealed);
      clearOpenWatch(watch);
      closeFails.add(basename(first.files.modelPath));
      const second = await prepare(dir, sealed);
      expect(second.sha256).toBe(first.sha256);
      expect(modelOpens()).toEqual([
        { name: basename(first.files.modelPath), flags: EARLIER_MODEL_FLAGS, closed: true },
      ]);
    },
  );

  it.each([
    ["plain", "read", false],
    ["sealed", "read", true],
    ["plain", "fstat", false],
    ["sealed", "fstat", true],
  ] as const)(
    "a %s model whose %s fails stops up as MODEL_IO (EIO) though its close fails too, not as the close's errno",
    async (_kind, failing, sealed) => {
      const dir = await mkdtemp(join(root, "run-"));
      const first = await prepare(dir, sealed);
      const name = basename(first.files.modelPath);
      if (failing === "read") readFails.add(name);
      else statFails.add(name);
      closeFails.add(name);
      const failed = await prepare(dir, sealed).then(
        () => null,
        (error: unknown) => error,
      );
      expect(failed).toBeInstanceOf(ModelIoError);
      expect(failed).toMatchObject({ code: "MODEL_IO", path: first.files.modelPath });
      expect((failed as Error).message).toBe(`model file ${first.files.modelPath}: cannot read (EIO)`);
    },
  );
});
