/**
 * The owner-only and protected file readers (attestation/kbs/key-file.ts, config.ts) end a refusal
 * of a file's mode with the command that fixes it: a path is written there as one shell word
 * (shellWord, as the output files' `mkdir -p` hint writes it), so that the command, pasted, changes
 * that file and runs nothing else: in double quotes, `$(…)`, a backquote or a `"` in the name would
 * be run or would end the word.
 */
import { chmod, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadBrokerConfig } from "../../attestation/kbs/config.ts";
import { readPrivateKeyFile } from "../../attestation/kbs/key-file.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { testDirectory } from "../helpers/test-directory.ts";

const dir = await testDirectory("cloister-key-file-hints-");

describe("a mode refusal's chmod hint names the file as one shell word", () => {
  it("a key file (readPrivateKeyFile): chmod 600 'PATH', a name with $(…), a backquote and a quote kept as it is", async () => {
    const file = join(dir, 'key $(touch pwned) `id` "x".jwk');
    await writeFile(file, "{}\n");
    await chmod(file, 0o644);
    const error = await rejectionOf(readPrivateKeyFile(file, "--key"), Error);
    expect(error.message).toBe(
      `--key ${file}: mode expected 0600 (owner only), found 0644; run chmod 600 '${dir}/key $(touch pwned) \`id\` "x".jwk'`,
    );
    // A single quote in the name: closed, escaped, reopened.
    const quoted = join(dir, "it's.jwk");
    await writeFile(quoted, "{}\n");
    await chmod(quoted, 0o640);
    expect((await rejectionOf(readPrivateKeyFile(quoted, "--key"), Error)).message).toMatch(
      /; run chmod 600 '.*\/it'\\''s\.jwk'$/,
    );
  });

  it("a plain path stays as it is; the broker's configuration (chmod go-w) too", async () => {
    const plain = join(dir, "plain.jwk");
    await writeFile(plain, "{}\n");
    await chmod(plain, 0o644);
    expect((await rejectionOf(readPrivateKeyFile(plain, "--key"), Error)).message).toMatch(
      /; run chmod 600 \/\S+\/plain\.jwk$/,
    );
    const config = join(dir, "broker $HOME.json");
    await writeFile(config, "{}\n");
    await chmod(config, 0o666);
    expect((await rejectionOf(loadBrokerConfig(config), Error)).message).toBe(
      `--config ${config}: writable by group or others (mode 0666); run chmod go-w '${config}'`,
    );
  });
});
