/**
 * The host's audit collector against a scripted enclave `/audit` (injected fetch): good batches are
 * stored and acknowledged; a malformed batch is reported, stores nothing and is asked for again,
 * and never takes the host down.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { AuditCollector } from "../../host/audit-collector.ts";

const BOOT = "ab".repeat(32);
const KEY = "cd".repeat(32);
const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

function scripted(batches: { from: number; lines: string[] }[]) {
  const asked: string[] = [];
  let acknowledged = 0;
  const fetchFn = (async (url: string | URL | Request) => {
    const query = new URL(String(url)).searchParams;
    asked.push(new URL(String(url)).search);
    if (query.get("boot") === BOOT) acknowledged = Number(query.get("from"));
    // Like the enclave: after the script, an empty batch from what was acknowledged.
    const batch = batches.shift() ?? { from: acknowledged, lines: [] };
    return new Response(
      JSON.stringify({
        boot: BOOT,
        signingKey: KEY,
        from: batch.from,
        lines: batch.lines,
        next: batch.from + batch.lines.length,
      }),
    );
  }) as typeof fetch;
  return { fetchFn, asked };
}

async function collector(fetchFn: typeof fetch) {
  const dir = await mkdtemp(join(tmpdir(), "cloister-collector-"));
  dirs.push(dir);
  const errors: string[] = [];
  const c = new AuditCollector({
    enclaveUrl: "http://enclave.invalid",
    dir,
    intervalMs: 60_000,
    fetch: fetchFn,
    onError: (m) => errors.push(m),
  });
  return { c, dir, errors, file: join(dir, `${BOOT.slice(0, 16)}.jsonl`) };
}

describe("audit collector", () => {
  it("stores a good batch and acknowledges it", async () => {
    const { fetchFn, asked } = scripted([{ from: 0, lines: ['{"n":0}', '{"n":1}'] }]);
    const { c, errors, file } = await collector(fetchFn);
    await c.collect();
    await c.stop();
    expect(errors).toEqual([]);
    expect((await readFile(file, "utf8")).trim().split("\n")).toEqual(['{"n":0}', '{"n":1}']);
    expect(asked.slice(0, 2)).toEqual(["?from=0", `?from=2&boot=${BOOT}`]);
  });

  it("reports a malformed batch, stores none of it, asks for it again, and does not throw", async () => {
    const { fetchFn, asked } = scripted([
      { from: 0, lines: ['{"n":0}', "not json"] },
      { from: 0, lines: ['{"n":0}', '{"n":1}'] },
    ]);
    const { c, errors, file } = await collector(fetchFn);
    await c.collect(); // must resolve, not reject (it runs from a timer in the host)
    expect(errors).toEqual([expect.stringContaining("record 1 from the enclave is not a valid record line")]);
    await c.collect();
    await c.stop();
    expect((await readFile(file, "utf8")).trim().split("\n")).toEqual(['{"n":0}', '{"n":1}']);
    expect(asked[1]).toBe(`?from=0&boot=${BOOT}`);
  });
});
