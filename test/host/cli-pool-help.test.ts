/**
 * `cloister host --help` says how a pool's members are numbered in the host's log (`pool: enclave N
 * …`) and in /healthz (`index`): from 0, in the order of `--enclave-url`; and that the members are
 * fixed when the host starts, a member restarted at the same URL taken back with its new key id (an
 * operator rolling an upgrade replaces members at their URLs: docs/deploy.md step 6). Checked here
 * against the pool the host builds from those URLs.
 */

import { createHash } from "node:crypto";
import { base64url } from "jose";
import { describe, expect, it } from "vitest";
import { buildProgram, commandTree } from "../../client/cli/program.ts";
import { createEnclavePool } from "../../host/app.ts";
import { EnclavePool } from "../../host/pool.ts";
import { DEFAULT_HOST_LIMITS } from "../../host/server.ts";

/** `cloister host`'s `--enclave-url` help text. */
function enclaveUrlHelp(): string | undefined {
  const host = commandTree(buildProgram()).find((command) => command.name() === "host");
  return host?.options.find((o) => o.long === "--enclave-url")?.description;
}

/** An enclave document as the pool reads it: only its cnf.jwk (the sealing key) matters here. */
function documentFor(key: Uint8Array): string {
  const payload = base64url.encode(
    JSON.stringify({ cnf: { jwk: { kty: "OKP", crv: "X25519", x: base64url.encode(key) } } }),
  );
  return `e30.${payload}.c2ln`;
}
const keyIdFor = (key: Uint8Array) => createHash("sha256").update(key).digest().subarray(0, 16).toString("hex");

describe("cloister host --help: a pool's members", () => {
  it("numbers members from 0 in --enclave-url order, as the pool does", async () => {
    expect(enclaveUrlHelp()).toContain("numbered from 0 in this order (the log's pool: enclave N, /healthz's index)");
    const urls = ["http://127.0.0.1:9/c", "http://127.0.0.1:9/a", "http://127.0.0.1:9/b"];
    const pool = createEnclavePool(urls, { limits: DEFAULT_HOST_LIMITS });
    expect(pool.members.map((member) => [member.index, member.url])).toEqual(urls.map((url, index) => [index, url]));
    expect(pool.status().map((member) => member.index)).toEqual([0, 1, 2]);
    await pool.stop();
  });

  it("fixes the members when the host starts, and takes one restarted at its URL back with its new key id", async () => {
    expect(enclaveUrlHelp()).toContain(
      "the members are fixed when the host starts (adding or removing one takes a host restart), and a member restarted at the same URL is taken back with its new key id",
    );
    const urls = ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"];
    const before = new Uint8Array(32).fill(1);
    const after = new Uint8Array(32).fill(2);
    const other = new Uint8Array(32).fill(3);
    // The enclave at /a restarts (a new sealing key) between the two refreshes; /b stays.
    let aKey = before;
    const pool = new EnclavePool(urls, {
      fetchText: async (url) => ({
        status: 200,
        text: JSON.stringify({ document: documentFor(url.startsWith(urls[0] as string) ? aKey : other) }),
      }),
    });
    const members = pool.members;
    // Frozen: nothing adds, removes or swaps a member after the pool is made.
    expect(Object.isFrozen(members)).toBe(true);
    await pool.refresh();
    expect(pool.status().map(({ index, keyId, state }) => [index, keyId, state])).toEqual([
      [0, keyIdFor(before), "ready"],
      [1, keyIdFor(other), "ready"],
    ]);
    aKey = after;
    await pool.refresh();
    // The same members, at the same URLs and indexes: member 0 taken back with its new key id.
    expect(pool.members).toBe(members);
    expect(pool.members.map((member) => member.url)).toEqual(urls);
    expect(pool.status().map(({ index, keyId, state }) => [index, keyId, state])).toEqual([
      [0, keyIdFor(after), "ready"],
      [1, keyIdFor(other), "ready"],
    ]);
    expect(pool.byKeyId(keyIdFor(before))).toBeUndefined();
    expect(pool.byKeyId(keyIdFor(after))?.index).toBe(0);
    await pool.stop();
  });
});
