/**
 * `cloister kbs keygen` (attestation/kbs/cli-impl.ts runKbsKeygen) writes its key file whole or not
 * at all (client/cli/output.ts writeFileAtomically): the key is synced before its file is closed and
 * put in place, the directory after; a write, chmod, sync or close that fails leaves nothing at --out
 * (a later run would be refused on it, EEXIST: a model key is never overwritten) and no temporary
 * file. The refusal names --out and the errno, the first error its cause. The handle's methods are
 * spied on through FileHandle's prototype; its close (a field of each handle, not of the prototype)
 * through node:fs/promises' open, mocked. A new file that could not be removed again is named as
 * left by the other callers' errors too (writeOutputFile's, the manifest commands').
 */
import { access, type FileHandle, open, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { runKbsKeygen } from "../../attestation/kbs/cli-impl.ts";
import { writeOutputFile } from "../../client/cli/output.ts";
import { keygenCommand } from "../../manifests/cli-impl.ts";
import { testDirectory } from "../helpers/test-directory.ts";

/** Each close of a handle opened through node:fs/promises' open, and the error a close is to throw (after closing). */
const closing = vi.hoisted(() => ({ closes: 0, fails: null as Error | null }));
/** A path whose removal (node:fs/promises' rm) is to fail, and with what; null: none. */
const removing = vi.hoisted(() => ({ path: null as string | null, fails: null as Error | null }));

vi.mock("node:fs/promises", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs/promises")>();
  const { fsWith } = await import("../helpers/foreign-link.ts");
  const open = (async (...args: Parameters<typeof real.open>) => {
    const handle = await real.open(...args);
    const close = handle.close.bind(handle);
    handle.close = async () => {
      closing.closes += 1;
      await close();
      if (closing.fails !== null) throw closing.fails;
    };
    return handle;
  }) as typeof real.open;
  const rm = (async (...args: Parameters<typeof real.rm>) => {
    if (removing.fails !== null && args[0] === removing.path) throw removing.fails;
    return real.rm(...args);
  }) as typeof real.rm;
  return fsWith(real, { open, rm });
});

/** Each key made by models/sealed.ts's generateModelKey (spied on through a mock). */
const making = vi.hoisted(() => ({ keys: 0 }));

vi.mock("../../models/sealed.ts", async (importOriginal) => {
  const real = await importOriginal<typeof import("../../models/sealed.ts")>();
  return {
    ...real,
    generateModelKey: (...args: Parameters<typeof real.generateModelKey>) => {
      making.keys += 1;
      return real.generateModelKey(...args);
    },
  };
});

const dir = await testDirectory("cloister-kbs-keygen-write-");

/** FileHandle's prototype (node:fs/promises does not export the class): that of a handle opened. */
const handleProto: FileHandle = await (async () => {
  const handle = await open(join(dir, "probe"), "w");
  await handle.close();
  closing.closes = 0;
  return Object.getPrototypeOf(handle) as FileHandle;
})();

afterEach(() => {
  vi.restoreAllMocks();
  closing.closes = 0;
  closing.fails = null;
  removing.path = null;
  removing.fails = null;
  making.keys = 0;
});

const quietly = () => vi.spyOn(process.stdout, "write").mockReturnValue(true);
const errno = (code: string, call: string) => Object.assign(new Error(`${code}: failed, ${call}`), { code });
/** Temporary files (writeFileAtomically's `.NAME.HEX.tmp`) left in the test directory. */
const leftovers = async () => (await readdir(dir)).filter((name) => name.endsWith(".tmp"));
const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

/**
 * The `nth` sync fails with `failure` (EIO), the others pass. `syncs`: how many were asked for.
 */
const failSync = (nth: number) => {
  const realSync = handleProto.sync;
  const failure = errno("EIO", "fsync");
  let syncs = 0;
  vi.spyOn(handleProto, "sync").mockImplementation(function (this: FileHandle) {
    syncs += 1;
    return syncs === nth ? Promise.reject(failure) : realSync.call(this);
  });
  return { failure, syncs: () => syncs };
};

/** The key file's sync passes; the directory's (the second) fails, after the key was linked at --out. */
const failDirectorySync = () => failSync(2);

describe("kbs keygen: the key file is written whole or not at all", () => {
  it("syncs the key before its file is closed, then the directory, and the file holds it", async () => {
    quietly();
    const realSync = handleProto.sync;
    /** The closes done before each sync. */
    const closesAtSync: number[] = [];
    vi.spyOn(handleProto, "sync").mockImplementation(function (this: FileHandle) {
      closesAtSync.push(closing.closes);
      return realSync.call(this);
    });
    const out = join(dir, "synced.jwk");
    await runKbsKeygen({ keyId: "synced-v1", out });
    // The key file's before its close, the directory's after it.
    expect(closesAtSync).toEqual([0, 1]);
    expect(closing.closes).toBe(2);
    expect(JSON.parse(await readFile(out, "utf8"))).toMatchObject({ kid: "synced-v1" });
    expect(await leftovers()).toEqual([]);
  });

  it.each([
    ["writeFile", "ENOSPC"],
    ["chmod", "EPERM"],
    ["sync", "EIO"],
  ] as const)("a %s that fails (%s) leaves no file at --out and names --out and the errno", async (method, code) => {
    quietly();
    const failure = errno(code, method);
    vi.spyOn(handleProto, method).mockRejectedValue(failure);
    const out = join(dir, `${method}.jwk`);
    const refused = await runKbsKeygen({ keyId: "k-v1", out }).then(
      () => null,
      (error: unknown) => error,
    );
    expect(refused).toMatchObject({ code: "USAGE", cause: failure });
    expect((refused as Error).message).toMatch(new RegExp(`^--out ${out}: cannot create \\(${code}\\b`));
    // Nothing was put at --out: no partial file to speak of.
    expect((refused as Error).message).not.toContain("partial");
    expect(closing.closes).toBe(1);
    expect(await exists(out)).toBe(false);
    expect(await leftovers()).toEqual([]);
    // Nothing left in the way: the next run writes the key.
    vi.restoreAllMocks();
    quietly();
    await runKbsKeygen({ keyId: "k-v1", out });
    expect(JSON.parse(await readFile(out, "utf8"))).toMatchObject({ kid: "k-v1" });
  });

  it("a close that fails after the write and sync is reported (the key may not be on disk), nothing at --out", async () => {
    quietly();
    const failure = errno("EIO", "close");
    closing.fails = failure;
    const out = join(dir, "close.jwk");
    const refused = await runKbsKeygen({ keyId: "k-v1", out }).then(
      () => null,
      (error: unknown) => error,
    );
    expect(refused).toMatchObject({ code: "USAGE", cause: failure });
    expect((refused as Error).message).toMatch(new RegExp(`^--out ${out}: cannot create \\(EIO\\b`));
    expect(await exists(out)).toBe(false);
    expect(await leftovers()).toEqual([]);
  });

  it("a close that fails after a failed write keeps the write's error as the cause", async () => {
    quietly();
    const failure = errno("ENOSPC", "write");
    vi.spyOn(handleProto, "writeFile").mockRejectedValue(failure);
    closing.fails = errno("EIO", "close");
    const out = join(dir, "both.jwk");
    const refused = await runKbsKeygen({ keyId: "k-v1", out }).then(
      () => null,
      (error: unknown) => error,
    );
    expect(refused).toMatchObject({ code: "USAGE", cause: failure });
    expect((refused as Error).message).toContain("(ENOSPC");
    expect(await exists(out)).toBe(false);
    expect(await leftovers()).toEqual([]);
  });

  it("a directory fsync that fails after the key was linked into place, and a removal that fails too, says the key is left", async () => {
    quietly();
    const { failure, syncs } = failDirectorySync();
    const out = join(dir, "left.jwk");
    removing.path = out;
    removing.fails = errno("EACCES", "rm");
    const refused = await runKbsKeygen({ keyId: "k-v1", out }).then(
      () => null,
      (error: unknown) => error,
    );
    expect(syncs()).toBe(2);
    expect(refused).toMatchObject({ code: "USAGE", cause: failure });
    const message = (refused as Error).message;
    expect(message).toMatch(new RegExp(`^--out ${out}: cannot create \\(EIO\\b`));
    expect(message).toContain(
      "; the new file was left there, not known to be on disk, and could not be removed (EACCES: this user may not write there; check the directory's owner and mode): remove it",
    );
    // It says so truly: the key is there, and no temporary file is.
    expect(JSON.parse(await readFile(out, "utf8"))).toMatchObject({ kid: "k-v1" });
    expect(await leftovers()).toEqual([]);
    // The key itself is never in the message.
    expect(message).not.toContain(JSON.parse(await readFile(out, "utf8")).k);
  });

  it("a directory fsync that fails after the key was linked into place removes it, and says nothing of a file left", async () => {
    quietly();
    const { failure, syncs } = failDirectorySync();
    const out = join(dir, "removed.jwk");
    const refused = await runKbsKeygen({ keyId: "k-v1", out }).then(
      () => null,
      (error: unknown) => error,
    );
    expect(syncs()).toBe(2);
    expect(refused).toMatchObject({ code: "USAGE", cause: failure });
    expect((refused as Error).message).toMatch(new RegExp(`^--out ${out}: cannot create \\(EIO\\b`));
    expect((refused as Error).message).not.toContain("left there");
    expect(await exists(out)).toBe(false);
  });
});

describe("the other writers of a new file say so too when it is left", () => {
  const leftNote =
    "; the new file was left there, not known to be on disk, and could not be removed (EACCES: this user may not write there; check the directory's owner and mode): remove it";

  it.each([
    [
      "an output file (writeOutputFile, no --force)",
      "output.json",
      (out: string) => writeOutputFile(out, "{}\n", "--out", "refuse"),
      (out: string) => `--out ${out}: cannot create (EIO`,
    ],
    [
      "manifest keygen's private key",
      "operator.private.jwk",
      (out: string) => keygenCommand({ outPrivate: out, outPublic: join(dir, "operator.public.jwk"), alg: "EdDSA" }),
      (out: string) => `--out-private ${out}: could not be written (EIO`,
    ],
  ] as const)("%s", async (_name, file, write, starts) => {
    quietly();
    const { failure, syncs } = failDirectorySync();
    const out = join(dir, file);
    removing.path = out;
    removing.fails = errno("EACCES", "rm");
    const refused = await write(out).then(
      () => null,
      (error: unknown) => error,
    );
    expect(syncs()).toBe(2);
    expect(refused).toMatchObject({ cause: failure });
    const message = (refused as Error).message;
    expect(message.startsWith(starts(out))).toBe(true);
    expect(message.endsWith(leftNote)).toBe(true);
    expect(await exists(out)).toBe(true);
    expect(await leftovers()).toEqual([]);
  });
});

describe("kbs keygen: an existing --out", () => {
  const refusal = (out: string) =>
    `--out ${out}: already exists (EEXIST); a model key is never overwritten (it would make sealed models unreadable)`;

  it("is refused before a key is made, with the same message, and is left as it was", async () => {
    const out = join(dir, "existing.jwk");
    await writeFile(out, "the old key\n");
    const refused = await runKbsKeygen({ keyId: "k-v1", out }).then(
      () => null,
      (error: unknown) => error,
    );
    expect(refused).toMatchObject({ code: "USAGE" });
    expect((refused as Error).message).toBe(refusal(out));
    expect(making.keys).toBe(0);
    expect(await readFile(out, "utf8")).toBe("the old key\n");
    expect(await leftovers()).toEqual([]);
  });

  it("that appears after the check is still refused by the link into place (EEXIST decides)", async () => {
    const out = join(dir, "appearing.jwk");
    const realWriteFile = handleProto.writeFile;
    // While the key is written to its temporary file: after the check, before the link.
    vi.spyOn(handleProto, "writeFile").mockImplementation(async function (this: FileHandle, ...args) {
      await writeFile(out, "a key put there meanwhile\n");
      return realWriteFile.apply(this, args);
    });
    const refused = await runKbsKeygen({ keyId: "k-v1", out }).then(
      () => null,
      (error: unknown) => error,
    );
    expect(making.keys).toBe(1);
    expect(refused).toMatchObject({ code: "USAGE", cause: { code: "EEXIST" } });
    expect((refused as Error).message).toBe(refusal(out));
    expect(await readFile(out, "utf8")).toBe("a key put there meanwhile\n");
    expect(await leftovers()).toEqual([]);
  });
});

describe("manifest keygen: a public key that cannot be written", () => {
  it("names the private key this run wrote, left on disk, and how to retry", async () => {
    quietly();
    const outPrivate = join(dir, "kept.private.jwk");
    const outPublic = join(dir, "kept.public.jwk");
    // The private key's file and directory syncs pass; the public key's file sync (the third) fails.
    const { failure, syncs } = failSync(3);
    const refused = await keygenCommand({ outPrivate, outPublic, alg: "EdDSA" }).then(
      () => null,
      (error: unknown) => error,
    );
    expect(syncs()).toBe(3);
    expect(refused).toMatchObject({ code: "MANIFEST_FILE", cause: failure });
    const message = (refused as Error).message;
    expect(message).toMatch(new RegExp(`^--out-public ${outPublic}: could not be written \\(EIO\\b`));
    expect(message.endsWith(`; the private key was written to ${outPrivate}: remove it or pass --force`)).toBe(true);
    // It says so truly: the private key is there, the public one is not, and no temporary file is.
    const privateJwk = JSON.parse(await readFile(outPrivate, "utf8"));
    expect(privateJwk).toHaveProperty("d");
    expect(message).not.toContain(privateJwk.d);
    expect(await exists(outPublic)).toBe(false);
    expect(await leftovers()).toEqual([]);
  });
});

describe("manifest keygen --force: a public key that cannot be written over the old one", () => {
  /** What a refusal of --force ends with: --out-public may hold the old key, none, or the new one. */
  const forcedNote = (outPrivate: string, outPublic: string) =>
    `; the private key was written to ${outPrivate}, and ${outPublic} is not known to hold its public key ` +
    "(one there from before does not match it): run manifest keygen again with --force";

  /**
   * `keygen --force` over an old pair (files `name`.private.jwk and .public.jwk), the `nth` sync
   * failing: its refusal (MANIFEST_FILE, that failure its cause, naming --out-public), checked here.
   */
  async function forcedKeygenFailing(name: string, nth: number) {
    quietly();
    const outPrivate = join(dir, `${name}.private.jwk`);
    const outPublic = join(dir, `${name}.public.jwk`);
    await writeFile(outPrivate, "the old private key\n");
    await writeFile(outPublic, "the old public key\n");
    const { failure, syncs } = failSync(nth);
    const refused = await keygenCommand({ outPrivate, outPublic, alg: "EdDSA", force: true }).then(
      () => null,
      (error: unknown) => error,
    );
    expect(syncs()).toBe(nth);
    expect(refused).toMatchObject({ code: "MANIFEST_FILE", cause: failure });
    const message = (refused as Error).message;
    expect(message).toMatch(new RegExp(`^--out-public ${outPublic}: could not be written \\(EIO\\b`));
    return { outPrivate, outPublic, message };
  }

  it("says the public key there from before does not match the new private key: run keygen again", async () => {
    // The private key's file and directory syncs pass; the public key's file sync (the third) fails.
    const { outPrivate, outPublic, message } = await forcedKeygenFailing("forced", 3);
    expect(message.endsWith(forcedNote(outPrivate, outPublic))).toBe(true);
    // It says so truly: the new private key is there, the old public one still is, and no temporary file.
    const privateJwk = JSON.parse(await readFile(outPrivate, "utf8"));
    expect(privateJwk).toHaveProperty("d");
    expect(message).not.toContain(privateJwk.d);
    expect(await readFile(outPublic, "utf8")).toBe("the old public key\n");
    expect(await leftovers()).toEqual([]);
  });

  it("does not claim the old public key stays when only the directory's fsync failed, after the rename", async () => {
    // The private key's syncs and the public key's file sync pass; its directory's (the fourth) fails.
    const { outPrivate, outPublic, message } = await forcedKeygenFailing("renamed", 4);
    // The new public key is in place (matching the new private key): the refusal claims no old one there.
    const privateJwk = JSON.parse(await readFile(outPrivate, "utf8"));
    const publicJwk = JSON.parse(await readFile(outPublic, "utf8"));
    expect(publicJwk).toMatchObject({ x: privateJwk.x });
    expect(message).not.toContain("still holds the old public key");
    expect(message.endsWith(forcedNote(outPrivate, outPublic))).toBe(true);
    expect(await leftovers()).toEqual([]);
  });
});

describe("manifest keygen: the private key's path in that refusal", () => {
  it("is one shell word, its control characters escaped, never written raw", async () => {
    quietly();
    const outPrivate = join(dir, "kept\u001b]0;x\u0007\n.private.jwk");
    const outPublic = join(dir, "kept2.public.jwk");
    failSync(3);
    const refused = await keygenCommand({ outPrivate, outPublic, alg: "EdDSA" }).then(
      () => null,
      (error: unknown) => error,
    );
    expect(refused).toMatchObject({ code: "MANIFEST_FILE" });
    const message = (refused as Error).message;
    expect(message).toContain(
      `; the private key was written to $'${dir}/kept\\033]0;x\\007\\n.private.jwk': remove it`,
    );
    for (const raw of ["\u001b", "\u0007", "\n"]) expect(message).not.toContain(raw);
    expect(await exists(outPrivate)).toBe(true);
  });
});
