/**
 * One enclave listed twice in a pool: refused as the pool is made (every host's pool, a library
 * caller's too) and by `cloister host` before anything starts, naming both positions and the URLs.
 * Listed twice, it would be two members, and byKeyId finds the first only: with that entry marked
 * unreachable and the other ready, its sealed requests would be refused WRONG_ENCLAVE_KEY.
 */
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { EnclavePool } from "../../host/pool.ts";
import { inProcessCli } from "../helpers/cli-in-process.ts";
import { testDirectory } from "../helpers/test-directory.ts";

const dir = await testDirectory("cloister-pool-repeat-");
const cli = inProcessCli();

/** The same enclave written as the pool would strip it, and as `new URL()` normalizes it. */
const REPEATS = [
  ["the same text", ["http://127.0.0.1:47101", "http://127.0.0.1:47101"], [0, 1]],
  ["a trailing slash (the member's URL strips it)", ["http://127.0.0.1:47101/", "http://127.0.0.1:47101"], [0, 1]],
  ["the host's case and the default port", ["http://enclave.internal", "http://ENCLAVE.internal:80/"], [0, 1]],
  ["a path with a dot segment, after another member", ["http://a:1", "http://b:1/x", "http://b:1/y/../x/"], [1, 2]],
] as const;

describe("EnclavePool: one enclave listed twice", () => {
  it.each(REPEATS)("%s: refused as it is made, naming both positions and URLs", (_name, urls, [first, second]) => {
    const fetchText = vi.fn(async () => ({ status: 200, text: "" }));
    let caught: unknown;
    try {
      new EnclavePool(urls, { fetchText });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(RangeError);
    expect((caught as Error).message).toBe(
      `enclaveUrl: expected each enclave listed once, found one enclave at positions ${first} and ${second} (from 0): ${JSON.stringify(urls[first])} and ${JSON.stringify(urls[second])}, the same compared as URLs (case, default port, dot segments and trailing slashes aside)`,
    );
    expect(fetchText).not.toHaveBeenCalled();
  });

  it("takes two enclaves on one host at other ports or paths", () => {
    const fetchText = vi.fn(async () => ({ status: 200, text: "" }));
    const pool = new EnclavePool(["http://127.0.0.1:47101", "http://127.0.0.1:47102", "http://127.0.0.1:47101/b"], {
      fetchText,
    });
    expect(pool.members.map((m) => m.url)).toEqual([
      "http://127.0.0.1:47101",
      "http://127.0.0.1:47102",
      "http://127.0.0.1:47101/b",
    ]);
  });
});

describe("cloister host: one enclave listed twice", () => {
  it("exits 2 with a usage error naming --enclave-url, both positions and the URLs, before anything starts", async () => {
    const audit = join(dir, "audit");
    const { code, stdout, stderr } = await cli([
      "host",
      "--enclave-url",
      "http://127.0.0.1:47103",
      "--enclave-url",
      "http://127.0.0.1:47104",
      "--enclave-url",
      "HTTP://127.0.0.1:47103/",
      "--api-keys",
      join(dir, "none.json"),
      "--audit-dir",
      audit,
      "--port",
      "0",
    ]);
    expect({ code, stdout, stderr }).toEqual({
      code: 2,
      stdout: "",
      stderr:
        'cloister: USAGE: --enclave-url: expected each enclave listed once, found one enclave at positions 0 and 2 (from 0): "http://127.0.0.1:47103" and "HTTP://127.0.0.1:47103/", the same compared as URLs (case, default port, dot segments and trailing slashes aside) (run with --help for usage)\n',
    });
  });
});
