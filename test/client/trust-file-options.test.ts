/**
 * The other trust files an option names are refused as --policy is (client/cli/bounded-file.ts
 * readTrustFile) when someone else could change them: verify-evidence's --policy (what evidence it
 * accepts), --operator-key (whose manifests are trusted: the anchor `policy init` writes into a
 * policy) and the host's --api-keys (which keys it accepts). Tests run as root.
 */
import { chmod, chown, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readPolicyOption } from "../../attestation/verify-evidence-cli.ts";
import { UsageError } from "../../client/cli/output.ts";
import { loadApiKeys } from "../../host/run.ts";
import { readOperatorKeyFile } from "../../manifests/cli-impl.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { testDirectoryEach } from "../helpers/test-directory.ts";

let root = "";
testDirectoryEach("cloister-trust-options-", (dir) => {
  root = dir;
});

const refusal = (promise: Promise<unknown>): Promise<Error> => rejectionOf(promise, Error);

const readers: [string, (file: string) => Promise<unknown>, string][] = [
  ["verify-evidence --policy", (file) => readPolicyOption(file, "sev-snp"), "what evidence this check accepts"],
  ["--operator-key", readOperatorKeyFile, "whose signed manifests are trusted"],
  ["--api-keys", loadApiKeys, "which API keys this host accepts"],
];

describe.each(readers)("%s", (name, read, held) => {
  const option = name.replace(/^verify-evidence /, "");

  it("is refused below a directory anyone may write to, naming it, what it would change and the fix", async () => {
    const open = join(root, "open");
    await mkdir(open);
    await chmod(open, 0o777);
    const file = join(open, "trust.json");
    await writeFile(file, "{}", { mode: 0o644 });
    const error = await refusal(read(file));
    expect(error).toBeInstanceOf(UsageError);
    expect(error.message).toBe(
      `${option} ${file}: expected no directory on its path that others can write to, found one (the directory ${open} mode 0777): anyone could put their own file in its place, and with it ${held}; chmod o-w ${open} (or set its sticky bit)`,
    );
  });

  it("is refused when others may write to it, or another user owns it", async () => {
    const file = join(root, "trust.json");
    await writeFile(file, "{}", { mode: 0o666 });
    await chmod(file, 0o666);
    expect((await refusal(read(file))).message).toBe(
      `${option} ${file}: expected a file others cannot write to, found mode 0666: anyone could rewrite it, and with it ${held}; chmod o-w ${file}`,
    );
    await chmod(file, 0o644);
    await chown(file, 4244, 4244);
    expect((await refusal(read(file))).message).toContain(`found one owned by uid 4244 (mode 0644)`);
  });
});
