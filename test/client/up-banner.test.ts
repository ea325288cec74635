/**
 * What `cloister up` writes once up (upBanner): a path of its files (under `--dir`, the user's) is
 * written as one line of text, its control and format characters as visible escapes
 * (visibleOnOneLine), as every error line writes them: a line feed in `--dir` does not start a line of
 * its own, nor an ESC a terminal sequence. The Try lines give it as a shell word (tryLines).
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { upBanner } from "../../client/cli/run-up.ts";

describe("cloister up: the lines it writes once up", () => {
  it("show a --dir holding a line feed and an ESC escaped, on the line that names it", () => {
    const dir = join(process.cwd(), "up\nfake line\u001b[2Jdir");
    const banner = upBanner(
      {
        hostUrl: "http://127.0.0.1:8080",
        enclaveUrls: ["http://127.0.0.1:9443"],
        kbsUrl: "http://127.0.0.1:8090",
        files: {
          policyPath: join(dir, "policy.json"),
          apiKeyPath: join(dir, "api-key"),
          kbs: { configPath: join(dir, "kbs.json"), keyId: "local.v1" },
        },
      },
      { tee: "snp" },
    );
    const shown = "up\\u000afake line\\u001b[2Jdir";
    const lines = banner.split("\n");
    expect(lines.slice(0, 5)).toEqual([
      `Cloister is up (SIMULATED snp: trusted only because ${shown}/policy.json says so).`,
      "  host URL     http://127.0.0.1:8080",
      `  policy       ${shown}/policy.json`,
      `  API key file ${shown}/api-key`,
      `  key broker   http://127.0.0.1:8090  (released model key "local.v1" to the attested enclave; config ${shown}/kbs.json)`,
    ]);
    expect(banner).not.toContain("\u001b");
    // The Try lines name it as a shell word, which pasted is the path itself.
    expect(lines[6]).toContain("--policy $'up\\nfake line\\033[2Jdir/policy.json'");
  });
});
