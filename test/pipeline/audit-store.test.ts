import { readFileSync, statSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyAuditLog } from "../../enclave/pipeline/audit.ts";
import { AuditStore, readAuditLines } from "../../host/audit-store.ts";
import { seededKeyPair, writeLog } from "./helpers.ts";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cloister-audit-store-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("AuditStore", () => {
  it("concurrent appends never interleave and keep call order; the stored log verifies", async () => {
    const path = join(dir, "concurrent.jsonl");
    const store = await AuditStore.open(path);
    const lines = writeLog(200);
    // Long lines (well above a pipe buffer's atomic size when batched) make interleaving visible.
    await Promise.all(lines.map((line) => store.append(line)));
    const read = await store.read();
    expect(read).toEqual(lines);
    expect(readFileSync(path, "utf8")).toBe(`${lines.join("\n")}\n`);
    expect(verifyAuditLog(read, seededKeyPair(7).publicKey).ok).toBe(true);
    await store.close();
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it("appends to an existing file and starts a fresh line after a torn tail", async () => {
    const path = join(dir, "torn.jsonl");
    const lines = writeLog(3);
    writeFileSync(path, `${lines[0]}\n${(lines[1] as string).slice(0, 40)}`);
    const store = await AuditStore.open(path, { fsync: "never" });
    await store.append(lines[2] as string);
    await store.close();
    const read = await readAuditLines(path);
    expect(read).toEqual([lines[0], (lines[1] as string).slice(0, 40), lines[2]]);
    // The torn line is kept and reported, not hidden.
    const result = verifyAuditLog(read, seededKeyPair(7).publicKey);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error).toMatchObject({ code: "AUDIT_RECORD_MALFORMED", index: 1 });
  });

  it.each([
    ["empty", ""],
    ["two lines", '{"a":1}\n{"b":2}'],
    ["carriage return", '{"a":1}\r'],
    ["not JSON", "hello"],
    ["a JSON array", "[1,2]"],
    ["too long", `{"a":"${"x".repeat(70_000)}"}`],
  ])("refuses a line that is %s, and keeps the file unchanged", async (_name, line) => {
    const path = join(dir, `refuse-${_name.replace(/\W/g, "")}.jsonl`);
    const store = await AuditStore.open(path);
    await expect(store.append(line)).rejects.toMatchObject({ code: "AUDIT_STORE_LINE_INVALID" });
    await store.close();
    expect(readFileSync(path, "utf8")).toBe("");
  });

  it("refuses appends after close", async () => {
    const store = await AuditStore.open(join(dir, "closed.jsonl"));
    await store.close();
    await expect(store.append('{"a":1}')).rejects.toMatchObject({ code: "AUDIT_STORE_CLOSED" });
  });

  it("reports an unopenable path with AUDIT_STORE_IO", async () => {
    await expect(AuditStore.open(join(dir, "missing-dir", "x.jsonl"))).rejects.toMatchObject({
      code: "AUDIT_STORE_IO",
    });
  });

  it("imports nothing from sealed/ or enclave/", () => {
    const source = readFileSync(new URL("../../host/audit-store.ts", import.meta.url), "utf8");
    const imports = [...source.matchAll(/^import .* from "([^"]+)";$/gm)].map((m) => m[1]);
    expect(imports).toEqual(["node:fs/promises"]);
  });
});
