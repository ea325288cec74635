/**
 * End to end, real processes: one host in front of a pool of two enclaves (DESIGN.md "Planned
 * next"). Each boot has its own keys; the host routes sealed requests by the envelope's enclave key
 * id, offers new sessions to the least busy member, and sends each client's nonce question to the
 * enclave whose document it is verifying. When a member goes away, sessions bound to it re-attest
 * once to another member and carry on; a restarted member rejoins with new keys.
 */
import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type Session } from "../../client/sdk.ts";
import { runCloister } from "../helpers/cli.ts";
import { bootDeployment, connectionArgs, type E2eDeployment, policyInitArgs } from "./helpers/deployment.ts";
import { drain } from "./helpers/stream.ts";

const GREEDY_CHAT_ANSWER =
  " The host only forwards sealed bytes and the enclave keeps every prompt private inside a confidential virtual machine.";
const QUESTION = [{ role: "user" as const, content: "What does the enclave do?" }];

type Member = { index: number; keyId: string | null; state: string; inFlight: number };

let deployment: E2eDeployment;

const keyIdOf = (session: Session) =>
  createHash("sha256").update(session.enclave.sealingPublicKey).digest().subarray(0, 16).toString("hex");

async function members(): Promise<Member[]> {
  const health = (await (
    await fetch(`${deployment.running.hostUrl}/healthz`, {
      headers: { authorization: `Bearer ${deployment.files.apiKey}` },
    })
  ).json()) as { enclaves?: Member[] };
  return health.enclaves ?? [];
}

async function until<T>(read: () => Promise<T>, ok: (value: T) => boolean, what: string): Promise<T> {
  for (let i = 0; i < 100; i++) {
    const value = await read();
    if (ok(value)) return value;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const open = () =>
  connect({ url: deployment.running.hostUrl, policy: deployment.files.policy, apiKey: deployment.files.apiKey });

beforeAll(async () => {
  deployment = await bootDeployment("sim-snp", { enclaves: 2, poolRefreshMs: 200 });
}, 120_000);

afterAll(async () => {
  await deployment?.stop();
});

describe("a host with a pool of two enclaves", () => {
  let a: Session;
  let b: Session;

  it("spreads new sessions over the members; each answers through the enclave it verified", async () => {
    const ready = await until(members, (m) => m.length === 2 && m.every((x) => x.state === "ready"), "two ready");
    expect(new Set(ready.map((m) => m.keyId)).size).toBe(2);
    a = await open();
    b = await open();
    expect(keyIdOf(a)).not.toBe(keyIdOf(b));
    expect(ready.map((m) => m.keyId).sort()).toEqual([keyIdOf(a), keyIdOf(b)].sort());
    for (const session of [a, b]) {
      const result = await drain(session.chat(QUESTION));
      expect(result.error).toBeUndefined();
      expect(result.text).toBe(GREEDY_CHAT_ANSWER);
    }
    // Each session's audit checkpoint comes from its own enclave (signed by the key it verified).
    expect((await a.auditCheckpoint()).count).toBeGreaterThanOrEqual(1);
    expect((await b.auditCheckpoint()).count).toBeGreaterThanOrEqual(1);
  });

  it("a member goes away: its sessions re-attest once to the other member and carry on", async () => {
    const gone = (await members()).find((m) => m.keyId === keyIdOf(a)) as Member;
    await deployment.running.stopEnclave(gone.index);
    const result = await drain(a.chat(QUESTION));
    expect(result.error).toBeUndefined();
    expect(result.text).toBe(GREEDY_CHAT_ANSWER);
    expect(keyIdOf(a)).toBe(keyIdOf(b));
    const after = await until(members, (m) => m[gone.index]?.state === "unreachable", "the member marked");
    expect(after[gone.index]?.state).toBe("unreachable");
    // New sessions only go to the member that answers.
    const c = await open();
    expect(keyIdOf(c)).toBe(keyIdOf(b));
  });

  it("a restarted member rejoins with new keys and takes new sessions again", async () => {
    const before = await members();
    const down = before.find((m) => m.state === "unreachable") as Member;
    await deployment.running.restartEnclave(down.index);
    const back = await until(
      members,
      (m) => m[down.index]?.state === "ready" && m[down.index]?.keyId !== down.keyId,
      "the member back with a new key id",
    );
    const newKey = back[down.index]?.keyId;
    const sessions = [await open(), await open()];
    expect(sessions.map(keyIdOf)).toContain(newKey);
    for (const session of sessions) {
      const result = await drain(session.chat(QUESTION));
      expect(result.error).toBeUndefined();
    }
  });

  it("stores every member's audit records, one file per enclave boot, and logs pool changes", async () => {
    const files = await until(
      () => readdir(join(deployment.dir, "audit")),
      (names) => names.filter((n) => n.endsWith(".jsonl")).length >= 3,
      "three boots' audit files",
    );
    expect(files.filter((n) => n.endsWith(".jsonl")).length).toBeGreaterThanOrEqual(3);
    expect(deployment.logs.some((l) => /\[host\] .*pool: enclave \d is unreachable/.test(l))).toBe(true);
  });

  it("refuses a malformed enclave name and routes an unknown one to re-attestation", async () => {
    const apiKey = deployment.files.apiKey;
    const ask = (query: string) =>
      fetch(`${deployment.running.hostUrl}/v1/attestation/challenge${query}`, {
        method: "POST",
        headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
        body: JSON.stringify({ nonce: Buffer.alloc(32).toString("base64url") }),
      });
    const bad = await ask("?enclave=XYZ");
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error: { code: "ENCLAVE_ID_MALFORMED" } });
    const unknown = await ask(`?enclave=${"0".repeat(32)}`);
    expect(unknown.status).toBe(409);
    expect(await unknown.json()).toMatchObject({ error: { code: "WRONG_ENCLAVE_KEY" } });
    expect(await deployment.crashed()).toBeNull();
  });

  it("cloister policy init works behind the pool: the self-check reaches the enclave the values came from", async () => {
    const run = await runCloister([...policyInitArgs(deployment), "--allow-simulator", "--json"]);
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout).policy.attestation.snp.measurements).toEqual(
      deployment.files.policy.attestation.snp?.measurements,
    );
  });

  it("attest and audit checkpoint --enclave KEYID verify that member: each boot's checkpoint covers its own stored log", async () => {
    const ready = await until(members, (m) => m.length === 2 && m.every((x) => x.state === "ready"), "two ready");
    const connection = connectionArgs(deployment, deployment.files.policyPath);
    const signingKeys = new Set<string>();
    for (const id of ready.map((m) => m.keyId as string)) {
      // The key id an operator reads off `attest` (or the host's log) names the boot it verified.
      const attest = await runCloister(["attest", ...connection, "--enclave", id]);
      expect(attest.code, attest.stderr).toBe(0);
      expect(attest.stdout).toMatch(new RegExp(`\\n  key id {7}${id} `));
      const verified = JSON.parse((await runCloister(["attest", ...connection, "--enclave", id, "--json"])).stdout) as {
        keyId: string;
        signingKey: string;
        documentDigest: string;
      };
      expect(verified.keyId).toBe(id);
      // Asked twice in a row: without --enclave the host would hand the two members out in turn.
      for (let i = 0; i < 2; i++) {
        const run = await runCloister(["audit", "checkpoint", ...connection, "--enclave", id, "--json"]);
        expect(run.code, run.stderr).toBe(0);
        const checkpoint = JSON.parse(run.stdout) as { count: number; signingKey: string; documentDigest: string };
        expect({ key: checkpoint.signingKey, document: checkpoint.documentDigest }).toEqual({
          key: verified.signingKey,
          document: verified.documentDigest,
        });
        // That boot's own log (the host files it by boot id) holds every record the checkpoint counts.
        const log = join(deployment.dir, "audit", `${checkpoint.documentDigest.slice(0, 16)}.jsonl`);
        const stored = await until(
          async () => (await readFile(log, "utf8")).split("\n").filter((line) => line !== "").length,
          (lines) => lines >= checkpoint.count,
          `the boot's ${checkpoint.count} record(s) stored`,
        );
        expect(stored).toBe(checkpoint.count);
      }
      signingKeys.add(verified.signingKey);
    }
    expect(signingKeys.size).toBe(2);
    // A key id no member has now: refused by the host, nothing verified.
    const gone = await runCloister(["audit", "checkpoint", ...connection, "--enclave", "0".repeat(32)]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain("WRONG_ENCLAVE_KEY");
  });
});
