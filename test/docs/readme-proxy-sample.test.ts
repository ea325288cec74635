/**
 * README.md's sample output of `cloister proxy` ("Using an OpenAI-compatible app") is what the command
 * prints, in its order: the verified enclave's summary and the policy's warnings (standard error)
 * first, then the address it listens on (standard output). Each line the sample shows is a line of
 * the output, up to the values that differ per build, boot and run (hashes and keys, numbers); a `…`
 * line stands for any lines the sample leaves out, and nothing else is skipped.
 */
import { readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { runProxy } from "../../client/cli/run-proxy.ts";
import { closeServers, devPolicy, serveDeployment } from "../client/helpers.ts";
import { REPO_ROOT } from "../helpers/cli.ts";
import { held } from "../helpers/held.ts";
import { capture, stopListenersRemover } from "../helpers/stops.ts";
import { testDirectory } from "../helpers/test-directory.ts";

const README = readFileSync(join(REPO_ROOT, "README.md"), "utf8");
const dir = await testDirectory("cloister-readme-proxy-sample-");
const removeStopListeners = stopListenersRemover();
afterEach(async () => {
  vi.restoreAllMocks();
  removeStopListeners();
  await closeServers();
});

/** The sample's output lines: the `# → ` comment block after the `npx cloister proxy` line, without `# → ` / `#   `. */
function readmeSample(readme: string): string[] {
  const section = readme.slice(readme.indexOf("\n## Using an OpenAI-compatible app\n"));
  const lines = section
    .slice(section.indexOf("\nnpx cloister proxy ") + 1)
    .split("\n")
    .slice(1);
  const end = lines.findIndex((line, i) => (i === 0 ? !line.startsWith("# → ") : !line.startsWith("#   ")));
  return lines.slice(0, end).map((line) => line.slice(4));
}

/** A line without what differs between runs: hashes and keys (whole or cut with "…"), numbers. */
function shape(line: string): string {
  return line.replace(/[A-Za-z0-9_-]{16,}…?/g, "#").replace(/\d+(\.\d+)*/g, "N");
}

/** The sample's lines not found in order in `output` (a `…` line skips any number of lines). */
function unmatched(sample: readonly string[], output: readonly string[]): string[] {
  const missing: string[] = [];
  let at = 0;
  let skipping = false;
  for (const line of sample) {
    if (line.trim() === "…") {
      skipping = true;
      continue;
    }
    const found = skipping
      ? output.findIndex((out, i) => i >= at && shape(out) === shape(line))
      : shape(output[at] ?? "") === shape(line)
        ? at
        : -1;
    if (found === -1) {
      missing.push(line);
      continue;
    }
    at = found + 1;
    skipping = false;
  }
  return missing;
}

describe("README's sample output of cloister proxy", () => {
  it("reads its lines in order (the summary and warnings first, then the address)", () => {
    const sample = readmeSample(README);
    expect(sample[0]).toBe("enclave verified");
    expect(sample).toContain("OpenAI-compatible proxy listening on http://127.0.0.1:8787/v1");
    expect(unmatched(["a", "…", "c"], ["a", "b", "c"])).toEqual([]);
    expect(unmatched(["a", "c"], ["a", "b", "c"])).toEqual(["c"]);
    expect(unmatched(["b", "a"], ["a", "b"])).toEqual(["b"]);
  });

  it("is what the command prints", async () => {
    const { url } = await serveDeployment();
    const policy = join(dir, "policy.json");
    await writeFile(policy, JSON.stringify(await devPolicy()));
    const apiKeyFile = join(dir, "api-key");
    await writeFile(apiKeyFile, "ck_test_0123456789abcdef\n", { mode: 0o600 });
    const written = capture();
    const banner = held();
    const write = vi.mocked(process.stdout.write);
    const captured = write.getMockImplementation() as (chunk: string | Uint8Array) => boolean;
    write.mockImplementation((chunk: string | Uint8Array) => {
      const result = captured(chunk);
      if (String(chunk).includes("Stop with Ctrl-C.")) banner.enter();
      return result;
    });
    // Its token file in this test's directory, not the default .cloister/proxy-token of the working one.
    const tokenFile = join(dir, "proxy", "token");
    const run = runProxy({ url, policy, apiKeyFile, port: 0, tokenFile });
    await banner.entered;
    const output = [...written.stderr, ...written.stdout]
      .join("")
      .replaceAll(tokenFile, ".cloister/proxy-token")
      .split("\n");
    process.emit("SIGTERM", "SIGTERM");
    await run;
    expect(unmatched(readmeSample(README), output)).toEqual([]);
  });
});
