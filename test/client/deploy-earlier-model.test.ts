/**
 * cloister up's open of an earlier run's model file (client/cli/deploy.ts, openEarlierModel), watched
 * through node:fs/promises (wrapped here, as test/models/model-input.test.ts does): the plain and the
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

/** Every open made of a model file (by the name's last part), with its flags. */
const watch = vi.hoisted(() => ({ opens: [] as { name: string; flags: unknown }[] }));

vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  const { fsWith } = await import("../helpers/foreign-link.ts");
  const open = (async (path: string, flags?: unknown, mode?: unknown) => {
    const name = typeof path === "string" ? (path.split("/").pop() ?? "") : "";
    if (name.startsWith("tiny.gguf")) watch.opens.push({ name, flags });
    return (real.open as (...args: unknown[]) => Promise<unknown>)(path, flags, mode);
  }) as typeof real.open;
  return fsWith(real, { open });
});

const root = await testDirectory("cloister-deploy-earlier-");

afterEach(() => {
  watch.opens.length = 0;
});

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
    watch.opens.length = 0;
    const second = await prepare(dir, sealed);
    expect(second.sha256).toBe(first.sha256);
    const name = basename(first.files.modelPath);
    // Kept: its one open is the check's (nothing written, nothing sealed anew).
    expect(watch.opens).toEqual([{ name, flags: EARLIER_MODEL_FLAGS }]);
  });
});
