/**
 * An enclave URL with a query or fragment, even an empty one: refused by every constructor given one
 * (EnclavePool's, AuditCollector's) and by `cloister host` before anything starts. The host appends
 * its routes to the URL's text, so "http://127.0.0.1:1?x" sent "/sealed" inside the query (to "/")
 * and "…#f" sent nothing of it: such a member failed every document read ("document: HTTP 404") but
 * was taken at start. A bare "?" or "#" parses to an empty search and hash: the text is checked.
 */
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { AuditCollector } from "../../host/audit-collector.ts";
import { enclaveUrlFault } from "../../host/enclave-url.ts";
import { EnclavePool } from "../../host/pool.ts";
import { inProcessCli } from "../helpers/cli-in-process.ts";
import { testDirectory } from "../helpers/test-directory.ts";

const dir = await testDirectory("cloister-enclave-url-query-");
const cli = inProcessCli();

/** Each URL, what it has, and the message's shown URL (cut at its mark, the rest not shown). */
const MARKED = [
  ["http://127.0.0.1:47111?x", "a query", '"http://127.0.0.1:47111?… (the rest not shown)"'],
  ["http://127.0.0.1:47111?", "a query", '"http://127.0.0.1:47111?… (the rest not shown)"'],
  ["http://127.0.0.1:47111/#f", "a fragment", '"http://127.0.0.1:47111/#… (the rest not shown)"'],
  ["http://127.0.0.1:47111#", "a fragment", '"http://127.0.0.1:47111#… (the rest not shown)"'],
  ["http://127.0.0.1:47111/#f?token", "a fragment", '"http://127.0.0.1:47111/#… (the rest not shown)"'],
] as const;

const fault = (what: string, shown: string) =>
  `expected no query or fragment (the host appends its routes to the URL), found ${what} in ${shown}`;

/** What `make` threw (undefined: nothing). */
function thrownBy(make: () => unknown): unknown {
  try {
    make();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe("enclave URL: a query or fragment", () => {
  it.each(MARKED)("%s: refused, naming %s without showing it", (url, what, shown) => {
    expect(enclaveUrlFault(url)).toBe(fault(what, shown));
  });

  it.each(MARKED)("%s: refused by EnclavePool and AuditCollector as they are made", (url, what, shown) => {
    const fetchText = vi.fn(async () => ({ status: 200, text: "" }));
    const onError = vi.fn();
    const makers = [
      () => new EnclavePool([url], { fetchText }),
      () => new AuditCollector({ enclaveUrl: url, dir: join(dir, "audit"), intervalMs: 60_000, onError }),
    ];
    for (const make of makers) {
      const error = thrownBy(make);
      expect(error).toBeInstanceOf(RangeError);
      expect((error as Error).message).toBe(`enclaveUrl: ${fault(what, shown)}`);
    }
    expect(fetchText).not.toHaveBeenCalled();
    expect(onError).not.toHaveBeenCalled();
  });

  it("takes one with neither, a path and trailing slash too", () => {
    for (const url of ["http://127.0.0.1:47111", "http://127.0.0.1:47111/", "http://127.0.0.1:47111/a/b"]) {
      expect(enclaveUrlFault(url), url).toBeNull();
    }
  });
});

describe("cloister host: an enclave URL with a query or fragment", () => {
  it.each([
    ["http://127.0.0.1:47112?", "a query", '"http://127.0.0.1:47112?… (the rest not shown)"'],
    ["http://127.0.0.1:47112#f", "a fragment", '"http://127.0.0.1:47112#… (the rest not shown)"'],
  ])("%s: exits 2 naming --enclave-url and %s, before anything starts", async (url, what, shown) => {
    const { code, stdout, stderr } = await cli([
      "host",
      "--enclave-url",
      "http://127.0.0.1:47113",
      "--enclave-url",
      url,
      "--api-keys",
      join(dir, "none.json"),
      "--audit-dir",
      join(dir, "audit"),
      "--port",
      "0",
    ]);
    expect({ code, stdout, stderr }).toEqual({
      code: 2,
      stdout: "",
      stderr: `cloister: USAGE: --enclave-url: ${fault(what, shown)} (run with --help for usage)\n`,
    });
  });
});
