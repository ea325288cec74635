/**
 * The broker's file rules (attestation/kbs/key-file.ts readPrivateKeyFile, config.ts
 * readProtectedFile) for the bits of "others" alone: a model key file others may read but its group
 * may not (mode 0604), and a configuration or release policy others may write but its group may not
 * (0602). The other tests' files (0644, 0640, 0664, 0666) all carry a group bit, so a rule that
 * checked the group's bits only passed them.
 */
import { chmod, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadBrokerConfig } from "../../attestation/kbs/config.ts";
import { readPrivateKeyFile } from "../../attestation/kbs/key-file.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { testDirectory } from "../helpers/test-directory.ts";

const dir = await testDirectory("cloister-kbs-others-only-");

describe("the broker's files: the bits of others alone", () => {
  it("refuses a key file others may read and its group may not (0604)", async () => {
    const file = join(dir, "others-read.jwk");
    await writeFile(file, "{}\n");
    await chmod(file, 0o604);
    const error = await rejectionOf(readPrivateKeyFile(file, "keys.0.keyFile"), Error);
    expect((error as { code?: string }).code).toBe("KBS_CONFIG_INVALID");
    expect(error.message).toBe(
      `keys.0.keyFile ${file}: mode expected 0600 (owner only), found 0604; run chmod 600 ${file}`,
    );
  });

  it("refuses a configuration others may write and its group may not (0602)", async () => {
    const file = join(dir, "others-write.json");
    await writeFile(file, "{}\n");
    await chmod(file, 0o602);
    const error = await rejectionOf(loadBrokerConfig(file), Error);
    expect((error as { code?: string }).code).toBe("KBS_CONFIG_INVALID");
    expect(error.message).toBe(`--config ${file}: writable by group or others (mode 0602); run chmod go-w ${file}`);
  });
});
