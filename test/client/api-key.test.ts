/**
 * Which API key the CLI sends where (client/cli/run-client.ts readApiKey): CLOISTER_API_KEY, the
 * named file, or `cloister up`'s local key file for a loopback URL only; a key going over plain
 * http to another host is warned of.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { UsageError } from "../../client/cli/output.ts";
import { readApiKey } from "../../client/cli/run-client.ts";

let dir: string;
let keyFile: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cloister-api-key-"));
  keyFile = join(dir, "key");
  await writeFile(keyFile, "ck_test_0123456789abcdef\n");
});
afterAll(() => rm(dir, { recursive: true, force: true }));
afterEach(() => {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
});

function stderr(): string[] {
  const lines: string[] = [];
  vi.spyOn(process.stderr, "write").mockImplementation((chunk) => {
    lines.push(String(chunk));
    return true;
  });
  return lines;
}

describe("readApiKey", () => {
  it("never sends the default local key file to another host", async () => {
    vi.stubEnv("CLOISTER_API_KEY", "");
    stderr();
    await expect(readApiKey(undefined, "https://cloister.example")).rejects.toMatchObject({
      constructor: UsageError,
      message: expect.stringContaining(
        "--api-key-file: expected the API key file for cloister.example (or CLOISTER_API_KEY); the default .cloister/api-key",
      ),
    });
  });

  it("uses the default local key file for 127.0.0.1 and localhost", async () => {
    vi.stubEnv("CLOISTER_API_KEY", "");
    for (const url of ["http://127.0.0.1:8080", "http://localhost:8080"]) {
      // Read from the working directory: the error names the file it tried.
      await expect(readApiKey(undefined, url)).rejects.toMatchObject({
        message: expect.stringContaining('--api-key-file: cannot read ".cloister/api-key"'),
      });
    }
  });

  it("reads a named file or CLOISTER_API_KEY for any host, warning of plain http to another host", async () => {
    vi.stubEnv("CLOISTER_API_KEY", "");
    const lines = stderr();
    expect(await readApiKey(keyFile, "https://cloister.example")).toBe("ck_test_0123456789abcdef");
    expect(lines).toEqual([]);
    expect(await readApiKey(keyFile, "http://10.0.0.5:8080")).toBe("ck_test_0123456789abcdef");
    expect(lines.join("")).toContain(
      "WARNING: --url http://10.0.0.5:8080 is plain http to another host: the API key crosses the network in the clear",
    );
    vi.stubEnv("CLOISTER_API_KEY", "ck_from_env_0123456789");
    expect(await readApiKey(undefined, "https://cloister.example")).toBe("ck_from_env_0123456789");
  });
});
