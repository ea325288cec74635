/**
 * The key broker's files and the secrets read as its key files are (attestation/kbs/key-file.ts
 * readCheckedFile) are refused when anyone may write to a directory their lookup goes through
 * without the sticky bit (attestation/path-safety.ts): they could put their own file in its place.
 * The file's own rules (owner, mode) stay the reader's, on the open file. Tests run as root.
 */
import { chmod, mkdir, mkdtemp, realpath, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadBrokerConfig } from "../../attestation/kbs/config.ts";
import { BrokerConfigError, readPrivateKeyFile } from "../../attestation/kbs/key-file.ts";

let root: string;
beforeEach(async () => {
  root = await realpath(await mkdtemp(join(tmpdir(), "cloister-key-file-path-")));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A file of `text` and `mode` in root/`dir`, a directory of `dirMode`. */
async function fileIn(dir: string, dirMode: number, name: string, text: string, mode: number): Promise<string> {
  await mkdir(join(root, dir), { recursive: true });
  await chmod(join(root, dir), dirMode);
  const file = join(root, dir, name);
  await writeFile(file, text, { mode });
  return file;
}

const refusal = (promise: Promise<unknown>): Promise<Error> =>
  promise.then(
    () => new Error("expected a refusal"),
    (error: unknown) => error as Error,
  );

describe("readCheckedFile's path check", () => {
  it("refuses the broker's configuration below a directory anyone may write to, naming it and the fix", async () => {
    const file = await fileIn("open", 0o777, "kbs.json", "{}", 0o644);
    const error = await refusal(loadBrokerConfig(file));
    expect(error).toBeInstanceOf(BrokerConfigError);
    const open = join(root, "open");
    expect(error.message).toBe(
      `--config ${file}: expected no directory on its path that others can write to, found one (the directory ${open} mode 0777): anyone could put their own file in its place, and with it which enclaves get the model keys; chmod o-w ${open} (or set its sticky bit)`,
    );
  });

  it("refuses a key file below such a directory, and reads one below a sticky one", async () => {
    const file = await fileIn("open", 0o777, "model.jwk", "{}", 0o600);
    expect((await refusal(readPrivateKeyFile(file, "--key"))).message).toBe(
      `--key ${file}: expected no directory on its path that others can write to, found one (the directory ${join(root, "open")} mode 0777): anyone could put their own file in its place, and with it the secret it holds; chmod o-w ${join(root, "open")} (or set its sticky bit)`,
    );
    // held: null, a caller that checked the directory itself: the file alone is checked.
    expect(await readPrivateKeyFile(file, "--key", { held: null })).toBe("{}");
    await chmod(join(root, "open"), 0o1777);
    expect(await readPrivateKeyFile(file, "--key")).toBe("{}");
  });
});
