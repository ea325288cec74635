/**
 * cloister up's open of an earlier run's model file (client/cli/deploy.ts, openEarlierModel), watched
 * through node:fs/promises (wrapped: test/helpers/watched-opens.ts): the plain and the
 * sealed model a re-run finds are opened read-only, without following a link, non-blocking and
 * without taking a terminal (O_NOCTTY), and kept when they are the tiny model.
 */
import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { mkdtemp, readFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { prepareDeployment } from "../../client/cli/deploy.ts";
import { testDirectory } from "../helpers/test-directory.ts";
import { clearOpenWatch, type OpenWatch } from "../helpers/watched-opens.ts";

/** Every open made (path, flags, closed): the model files' are those named tiny.gguf…. */
const watch = vi.hoisted((): OpenWatch => ({ opens: [], afterStat: new Map(), fstatFails: new Set() }));

vi.mock("node:fs/promises", async (importOriginal) => {
  const { watchOpens } = await import("../helpers/watched-opens.ts");
  return watchOpens(await importOriginal(), watch);
});

const root = await testDirectory("cloister-deploy-earlier-");

afterEach(() => {
  clearOpenWatch(watch);
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
});
