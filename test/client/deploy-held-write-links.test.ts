/**
 * prepareDeployment (client/cli/deploy.ts, `cloister up --dir`) writes no file through a symbolic
 * link at its name: root may run it in another user's checkout, and a secret (the operator key, the
 * API key, the model key) or a policy written through a link lands wherever it leads. A link at each
 * name it writes, to nothing or to a file, is refused, naming the file, and nothing is written where
 * it leads: put there before the run, or (for a secret found missing, then made) right after up
 * looked and found nothing, the race made deterministic inside the lstat that looked. Something
 * else that is not a regular file at a name it writes again (a FIFO, read or not, a directory) is
 * refused in the same words, never written to nor replaced. One put at such a name after up checked
 * it (made deterministic inside that lstat) is replaced by the rename, a link never written through;
 * a directory, which the rename cannot replace, is refused as one found there, its cause (the
 * rename's EISDIR, with the temporary file's path and the name's) named by the --dir path (in place of
 * deploy-held-names' check of a write's cause, which the lstat before the write now refuses without
 * one). Tests run as root.
 */
import { execFileSync } from "node:child_process";
import { constants } from "node:fs";
import * as fs from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { testDirectoryEach } from "../helpers/test-directory.ts";

/** The name whose lookup finds nothing, then has a link to `to` put at it (once: `name` is then null). */
const race = vi.hoisted((): { name: string | null; to: string } => ({ name: null, to: "" }));

/**
 * The name whose lookup finds a file, then has it replaced (once: `name` is then null) by a link to
 * `to` or, with `to` null, by a directory: the swap after up's check of a name it writes again.
 */
const after = vi.hoisted((): { name: string | null; to: string | null } => ({ name: null, to: null }));

vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  const { fsWith } = await import("../helpers/foreign-link.ts");
  const lstat = (async (file: string, options?: unknown) => {
    const found = await real.lstat(file, options as Parameters<typeof real.lstat>[1]).then(
      (info) => ({ info }),
      (error: unknown) => ({ error }),
    );
    if (race.name !== null && "error" in found && String(file).endsWith(`/${race.name}`)) {
      race.name = null;
      await real.symlink(race.to, String(file));
    }
    if (after.name !== null && "info" in found && String(file).endsWith(`/${after.name}`)) {
      after.name = null;
      await real.rm(String(file));
      await (after.to === null ? real.mkdir(String(file), { mode: 0o700 }) : real.symlink(after.to, String(file)));
    }
    if ("error" in found) throw found.error;
    return found.info;
  }) as typeof real.lstat;
  return fsWith(real, { lstat });
});

const { prepareDeployment } = await import("../../client/cli/deploy.ts");

let root: string;
testDirectoryEach("cloister-deploy-write-links-", (dir) => {
  root = dir;
});
afterEach(() => {
  race.name = null;
  after.name = null;
  after.to = null;
});

/** Every file prepareDeployment writes in a sealed-model deployment, by its path in --dir. */
const WRITTEN = [
  "operator.private.jwk",
  "operator.public.jwk",
  "manifest.jws",
  "api-key",
  "api-keys.json",
  "policy.json",
  "kbs/model-key.jwk",
  "kbs/release-policy.json",
  "kbs/config.json",
];

/** A deployment directory with its kbs/ (mode 0700, root's, as up makes them), and a prepare of it. */
async function deployment(): Promise<{ dir: string; prepare: () => Promise<string> }> {
  const dir = join(root, "deployments");
  await fs.mkdir(join(dir, "kbs"), { recursive: true, mode: 0o700 });
  const options = { dir, tee: "sim-snp" as const, threads: 1, progress: () => {}, sealedModel: true };
  const prepare = () =>
    prepareDeployment(options).then(
      () => "prepared",
      (error: Error) => error.message,
    );
  return { dir, prepare };
}

/** A file the link may lead to, its text and mode to find unchanged. */
async function victim(): Promise<{ path: string; unchanged: () => Promise<void> }> {
  const path = join(root, "victim");
  await fs.writeFile(path, "not cloister's\n", { mode: 0o640 });
  await fs.chmod(path, 0o640);
  const unchanged = async () => {
    expect(await fs.readFile(path, "utf8")).toBe("not cloister's\n");
    expect((await fs.stat(path)).mode & 0o7777).toBe(0o640);
  };
  return { path, unchanged };
}

describe("prepareDeployment: a symbolic link at a name it writes, there before the run", () => {
  for (const name of WRITTEN) {
    it(`refuses ${name} as a link to nothing, and makes nothing where it leads`, async () => {
      const { dir, prepare } = await deployment();
      const leads = join(root, "nothing-yet");
      await fs.symlink(leads, join(dir, name));
      const refused = await prepare();
      expect(refused).toContain(join(dir, name));
      expect(refused).toContain("a symbolic link");
      expect(refused).not.toContain("/proc/self/fd");
      await expect(fs.lstat(leads)).rejects.toThrow(/ENOENT/);
    });

    it(`refuses ${name} as a link to a file, and leaves that file as it was`, async () => {
      const { dir, prepare } = await deployment();
      const file = await victim();
      await fs.symlink(file.path, join(dir, name));
      const refused = await prepare();
      expect(refused).toContain(join(dir, name));
      expect(refused).toContain("a symbolic link");
      await file.unchanged();
    });
  }
});

describe("prepareDeployment: a link put at a secret's name once up found it missing", () => {
  for (const name of ["operator.private.jwk", "api-key", "kbs/model-key.jwk"]) {
    it(`refuses ${name} as a link to nothing, and makes nothing where it leads`, async () => {
      const { dir, prepare } = await deployment();
      const leads = join(root, "nothing-yet");
      race.name = name;
      race.to = leads;
      const refused = await prepare();
      expect(race.name).toBeNull(); // the link was put there
      expect(refused).toContain(join(dir, name));
      expect(refused).toContain("put there meanwhile");
      await expect(fs.lstat(leads)).rejects.toThrow(/ENOENT/);
    });

    it(`refuses ${name} as a link to a file, and leaves that file as it was`, async () => {
      const { dir, prepare } = await deployment();
      const file = await victim();
      race.name = name;
      race.to = file.path;
      const refused = await prepare();
      expect(race.name).toBeNull();
      expect(refused).toContain(join(dir, name));
      expect(refused).toContain("put there meanwhile");
      await file.unchanged();
    });
  }
});

/** The files prepareDeployment writes again on each run (writePublic): any found at their names is opened to write. */
const WRITTEN_AGAIN = WRITTEN.filter(
  (name) => !["operator.private.jwk", "api-key", "kbs/model-key.jwk"].includes(name),
);

describe("prepareDeployment: something that is not a regular file at a name it writes again", () => {
  for (const name of WRITTEN_AGAIN) {
    it(`refuses ${name} as a FIFO no process reads, naming the file and what it found (not ENXIO alone)`, async () => {
      const { dir, prepare } = await deployment();
      execFileSync("mkfifo", ["-m", "600", join(dir, name)]);
      const refused = await prepare();
      expect(refused).toBe(`cloister up: file to write ${join(dir, name)}: expected a regular file, found a FIFO`);
      expect((await fs.lstat(join(dir, name))).isFIFO()).toBe(true);
    });

    it(`refuses ${name} as a FIFO a process reads (found by lstat, never opened), writing nothing to it`, async () => {
      const { dir, prepare } = await deployment();
      execFileSync("mkfifo", ["-m", "600", join(dir, name)]);
      const reader = await fs.open(join(dir, name), constants.O_RDONLY | constants.O_NONBLOCK);
      try {
        const refused = await prepare();
        expect(refused).toBe(`cloister up: file to write ${join(dir, name)}: expected a regular file, found a FIFO`);
        const { bytesRead } = await reader.read(Buffer.alloc(16), 0, 16, null).catch(() => ({ bytesRead: 0 }));
        expect(bytesRead).toBe(0);
      } finally {
        await reader.close();
      }
    });

    it(`refuses ${name} as a directory, naming the file and what it found (not EISDIR alone)`, async () => {
      const { dir, prepare } = await deployment();
      await fs.mkdir(join(dir, name), { mode: 0o700 });
      const refused = await prepare();
      expect(refused).toBe(`cloister up: file to write ${join(dir, name)}: expected a regular file, found a directory`);
    });
  }
});

describe("prepareDeployment: something put at a name it writes again once up checked it", () => {
  for (const name of WRITTEN_AGAIN) {
    it(`replaces a link put at ${name} (never writes where it leads), leaving a file of mode 0644`, async () => {
      const { dir, prepare } = await deployment();
      expect(await prepare()).toBe("prepared");
      const file = await victim();
      after.name = name;
      after.to = file.path;
      expect(await prepare()).toBe("prepared");
      expect(after.name).toBeNull(); // the link was put there
      await file.unchanged();
      const info = await fs.lstat(join(dir, name));
      expect([info.isFile(), info.mode & 0o7777]).toEqual([true, 0o644]);
    });
  }

  it("refuses a directory put at policy.json as one found there, its cause (the rename's) named by name", async () => {
    const { dir, prepare } = await deployment();
    expect(await prepare()).toBe("prepared");
    after.name = "policy.json";
    const options = { dir, tee: "sim-snp" as const, threads: 1, progress: () => {}, sealedModel: true };
    const error = await prepareDeployment(options).then(
      () => null,
      (failed: Error) => failed,
    );
    expect(after.name).toBeNull(); // the directory was put there
    const path = join(dir, "policy.json");
    expect(error?.message).toBe(`cloister up: file to write ${path}: expected a regular file, found a directory`);
    const cause = error?.cause as (NodeJS.ErrnoException & { dest?: string }) | undefined;
    expect([cause?.code, cause?.dest]).toEqual(["EISDIR", path]);
    expect(cause?.path).toMatch(/\/\.policy\.json\.[0-9a-f]+\.tmp$/);
    for (const text of [error?.stack, cause?.path, cause?.message, cause?.stack]) {
      expect(text).toContain(dir);
      expect(text).not.toContain("/proc/self/fd");
    }
    expect((await fs.lstat(path)).isDirectory()).toBe(true);
    expect((await fs.readdir(dir)).filter((entry) => entry.endsWith(".tmp"))).toEqual([]);
  });
});
