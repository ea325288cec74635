/**
 * `cloister policy init` behind a pool of an SNP and a TDX member: the self-check asks the very
 * member whose document the values came from (by its key id), so it never lands on the other
 * platform; `--enclave <key id>` pins from the member named, and a key id no member has is refused;
 * docs/deploy.md step 5's jq command joins the two platforms' policies into one that accepts both.
 */

import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toHex } from "../../attestation/bytes.ts";
import { hashApiKey } from "../../client/cli/api-key-hash.ts";
import { parseClientPolicy } from "../../client/policy.ts";
import { connect } from "../../client/sdk.ts";
import { listen, type RunningServer } from "../../enclave/http.ts";
import { createEnclaveApp } from "../../enclave/server.ts";
import { simulatedMeasurement } from "../../enclave/tee.ts";
import { createEnclavePool, createHostApp } from "../../host/app.ts";
import { ApiKeyStore } from "../../host/identity.ts";
import { DEFAULT_HOST_LIMITS } from "../../host/server.ts";
import { bootWith, operatorPublicKey, ScriptedEngine } from "../enclave/helpers.ts";
import { REPO_ROOT, runCloister } from "../helpers/cli.ts";

const KEY = "ck_policy_pool_0123456789abcdef";
const TEES = ["sim-snp", "sim-tdx"] as const;

let dir: string;
const servers: RunningServer[] = [];
/** Each member's key id and platform, in pool order. */
const members: { keyId: string; tee: (typeof TEES)[number] }[] = [];
let hostUrl: string;
/** The pool's host app (a test's own host in front of it answers some requests its own way). */
let hostApp: { fetch: (request: Request) => Response | Promise<Response> };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cloister-policy-pool-"));
  await writeFile(join(dir, "api-key"), `${KEY}\n`, { mode: 0o600 });
  await writeFile(join(dir, "operator.jwk"), JSON.stringify(await operatorPublicKey()));
  const urls: string[] = [];
  for (const tee of TEES) {
    const enclave = await bootWith(new ScriptedEngine(() => []), 0, {}, tee);
    const server = await listen(createEnclaveApp(enclave).fetch, "127.0.0.1", 0);
    servers.push(server);
    urls.push(server.url);
    const document = (await (await fetch(`${server.url}/attestation`)).json()) as { document: string };
    const payload = JSON.parse(Buffer.from(document.document.split(".")[1] as string, "base64url").toString()) as {
      cnf: { jwk: { x: string } };
    };
    const key = Buffer.from(payload.cnf.jwk.x, "base64url");
    members.push({ keyId: createHash("sha256").update(key).digest().subarray(0, 16).toString("hex"), tee });
  }
  const pool = createEnclavePool(urls, { limits: DEFAULT_HOST_LIMITS });
  const app = createHostApp({
    pool,
    apiKeys: new ApiKeyStore({
      version: 1,
      keys: [{ id: "ops", project: "demo", sha256: hashApiKey(KEY), permissions: ["attest"], requestsPerMinute: 1000 }],
    }),
    limits: DEFAULT_HOST_LIMITS,
    accessLog: () => {},
  });
  await pool.refresh();
  hostApp = app;
  const host = await listen(app.fetch, "127.0.0.1", 0);
  servers.push(host);
  hostUrl = host.url;
}, 60_000);

afterAll(async () => {
  for (const server of servers.splice(0).reverse()) await server.close();
  await rm(dir, { recursive: true, force: true });
});

const policyInit = (extra: string[], url = hostUrl) =>
  runCloister(
    [
      "policy",
      ...["init", "--url", url, "--operator-key", "operator.jwk", "--api-key-file", "api-key"],
      ...["--allow-simulator", "--json", ...extra],
    ],
    { cwd: dir, timeoutMs: 60_000 },
  );

/** What a policy pins, by platform: the evidence it accepts and that platform's measurement. */
async function pinned(stdout: string) {
  const policy = parseClientPolicy(JSON.parse(stdout).policy);
  const tee = policy.acceptedEvidence.includes("tdx") ? "sim-tdx" : "sim-snp";
  const measurements = tee === "sim-tdx" ? policy.attestation.tdx?.mrtd : policy.attestation.snp?.measurements;
  return { tee, measurements, expected: [toHex(await simulatedMeasurement(tee))] };
}

describe("cloister policy init behind a pool of an SNP and a TDX member", () => {
  it("--enclave KEYID pins from that member, and its self-check asks that member, for each platform", async () => {
    for (const member of members) {
      const run = await policyInit(["--enclave", member.keyId]);
      expect(run.code, run.stderr).toBe(0);
      const got = await pinned(run.stdout);
      expect({ tee: got.tee, measurements: got.measurements }).toEqual({ tee: member.tee, measurements: got.expected });
    }
  });

  it("without --enclave pins the member the host offers, whichever platform it is (runs go round the pool)", async () => {
    const tees = new Set<string>();
    for (let i = 0; i < 2; i++) {
      const run = await policyInit([]);
      expect(run.code, run.stderr).toBe(0);
      const got = await pinned(run.stdout);
      expect(got.measurements).toEqual(got.expected);
      tees.add(got.tee);
    }
    expect(tees).toEqual(new Set(TEES));
  });

  it("refuses a key id no member has, naming it (WRONG_ENCLAVE_KEY, exit 1), and writes nothing", async () => {
    const wrong = "0123456789abcdef0123456789abcdef";
    const run = await policyInit(["--enclave", wrong, "--out", "never.json"]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("WRONG_ENCLAVE_KEY");
    expect(run.stderr).toContain(`enclave key id ${wrong}: no enclave of this host has it now`);
    expect(run.stdout).toBe("");
  });

  it("refuses a host that answers --enclave's key id with another member's document (ENCLAVE_KEY_ID_MISMATCH), writing nothing", async () => {
    const [named, other] = members as [(typeof members)[number], (typeof members)[number]];
    // A hostile host: asked for the named member's document, it answers with the other's (genuine,
    // and its self-check would pass: every later question naming the other member goes through).
    const swapping = await listen(
      (request) => {
        const url = new URL(request.url);
        if (url.pathname === "/v1/attestation" && url.searchParams.get("enclave") === named.keyId) {
          const swapped = new Request(`${hostUrl}/v1/attestation?enclave=${other.keyId}`, { headers: request.headers });
          return hostApp.fetch(swapped);
        }
        return hostApp.fetch(request);
      },
      "127.0.0.1",
      0,
    );
    try {
      const run = await policyInit(["--enclave", named.keyId, "--out", "swapped.json"], swapping.url);
      expect(run.code, run.stderr).toBe(1);
      expect(run.stderr).toContain(
        `ENCLAVE_KEY_ID_MISMATCH: attestation document's enclave key id (cnf.jwk): expected ${named.keyId} (--enclave), found ${other.keyId}`,
      );
      expect(run.stdout).toBe("");
      await expect(readFile(join(dir, "swapped.json"))).rejects.toMatchObject({ code: "ENOENT" });
    } finally {
      await swapping.close();
    }
  });

  it("docs/deploy.md step 5's jq joins the SNP and the TDX member's policies into one that accepts both", async () => {
    const page = await readFile(join(REPO_ROOT, "docs/deploy.md"), "utf8");
    // The program may span lines (within its quotes), as the page wraps it.
    const joinCommand = /\n(jq -s '[^']*' \\\n {2}policy-snp\.json policy-tdx\.json > policy\.json)\n/.exec(page)?.[1];
    expect(joinCommand, "the page's jq command").toBeDefined();
    for (const member of members) {
      const out = member.tee === "sim-snp" ? "policy-snp.json" : "policy-tdx.json";
      const run = await policyInit(["--enclave", member.keyId, "--out", out, "--force"]);
      expect(run.code, run.stderr).toBe(0);
    }
    await promisify(execFile)("sh", ["-c", joinCommand as string], { cwd: dir });
    const policy = parseClientPolicy(JSON.parse(await readFile(join(dir, "policy.json"), "utf8")));
    expect([...policy.acceptedEvidence].sort()).toEqual(["sev-snp", "tdx"]);
    for (const member of members) {
      const session = await connect({ url: hostUrl, policy, apiKey: KEY, enclaveKeyId: member.keyId });
      expect(session.enclave.tee).toBe(member.tee === "sim-snp" ? "sev-snp" : "tdx");
    }
    // Nothing either run pinned is lost: each platform's section whole (its measurements, its TCB
    // minimum), the SNP run's manifest and freshness.
    const inputs = await Promise.all(
      ["policy-snp.json", "policy-tdx.json"].map(async (name) => JSON.parse(await readFile(join(dir, name), "utf8"))),
    );
    const joined = JSON.parse(await readFile(join(dir, "policy.json"), "utf8"));
    expect(joined.attestation.snp).toEqual(inputs[0].attestation.snp);
    expect(joined.attestation.tdx).toEqual(inputs[1].attestation.tdx);
    expect({ manifest: joined.manifest, freshness: joined.freshness }).toEqual({
      manifest: inputs[0].manifest,
      freshness: inputs[0].freshness,
    });
    // A run that does not trust the simulator (hardware, without --allow-simulator) is not made to by
    // the other's: the join trusts it only when both do, whichever of the two trusts it.
    for (const [index, name] of ["policy-snp.json", "policy-tdx.json"].entries()) {
      const strict = structuredClone(inputs);
      strict[index].attestation.trustSimulator = false;
      for (const [i, input] of strict.entries()) {
        await writeFile(join(dir, i === 0 ? "policy-snp.json" : "policy-tdx.json"), JSON.stringify(input));
      }
      await promisify(execFile)("sh", ["-c", joinCommand as string], { cwd: dir });
      const strictJoin = JSON.parse(await readFile(join(dir, "policy.json"), "utf8"));
      expect(strictJoin.attestation.trustSimulator, `${name} without trustSimulator`).toBe(false);
    }
    // A run whose clock skews an operator tightened keeps them tight in the join, whichever run it is.
    for (const [index, name] of ["policy-snp.json", "policy-tdx.json"].entries()) {
      const tight = structuredClone(inputs);
      tight[index].attestation.maximumVerificationSkewSeconds = 60;
      tight[index].freshness.maxClockSkewSeconds = 30;
      for (const [i, input] of tight.entries()) {
        await writeFile(join(dir, i === 0 ? "policy-snp.json" : "policy-tdx.json"), JSON.stringify(input));
      }
      await promisify(execFile)("sh", ["-c", joinCommand as string], { cwd: dir });
      const tightJoin = parseClientPolicy(JSON.parse(await readFile(join(dir, "policy.json"), "utf8")));
      expect(
        { skew: tightJoin.attestation.maximumVerificationSkewSeconds, clock: tightJoin.freshness.maxClockSkewSeconds },
        `${name} tightened`,
      ).toEqual({ skew: 60, clock: 30 });
    }
  });
});
