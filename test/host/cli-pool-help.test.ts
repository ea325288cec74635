/**
 * `cloister host --help` says how a pool's members are numbered in the host's log (`pool: enclave N
 * …`) and in /healthz (`index`): from 0, in the order of `--enclave-url`. Checked here against the
 * pool the host builds from those URLs.
 */

import { describe, expect, it } from "vitest";
import { buildProgram, commandTree } from "../../client/cli/program.ts";
import { createEnclavePool } from "../../host/app.ts";
import { DEFAULT_HOST_LIMITS } from "../../host/server.ts";

describe("cloister host --help: a pool's member numbers", () => {
  it("numbers members from 0 in --enclave-url order, as the pool does", async () => {
    const host = commandTree(buildProgram()).find((command) => command.name() === "host");
    const option = host?.options.find((o) => o.long === "--enclave-url");
    expect(option?.description).toContain(
      "numbered from 0 in this order (the log's pool: enclave N, /healthz's index)",
    );
    const urls = ["http://127.0.0.1:9/c", "http://127.0.0.1:9/a", "http://127.0.0.1:9/b"];
    const pool = createEnclavePool(urls, { limits: DEFAULT_HOST_LIMITS });
    expect(pool.members.map((member) => [member.index, member.url])).toEqual(urls.map((url, index) => [index, url]));
    expect(pool.status().map((member) => member.index)).toEqual([0, 1, 2]);
    await pool.stop();
  });
});
