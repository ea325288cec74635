/**
 * A server that cannot listen where its options say is bad input naming the option (exit 2), as
 * `cloister proxy` says it: a port another process holds, a --listen address that does not resolve.
 * The enclave finds out before it boots: no key-broker request, no model loaded. `cloister up`
 * checks its fixed ports before it starts anything, and reports a child's port (taken after that
 * check) as its own option.
 */

import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer as createHttpServer } from "node:http";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { prepareDeployment, startDeployment } from "../../client/cli/deploy.ts";
import { simulatorClientPolicy } from "../../client/dev-policy.ts";
import { devManifest } from "../../manifests/dev.ts";
import { generateManifestSigningKey, signManifest } from "../../manifests/sign.ts";
import { generateModelKey, modelKeyToJwk } from "../../models/sealed.ts";
import { runCloister } from "../helpers/cli.ts";
import { inProcessCli } from "../helpers/cli-in-process.ts";

let dir: string;
let holder: Server;
/** A port this test holds on 127.0.0.1 for the whole file. */
let taken: number;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cloister-cli-listen-"));
  holder = createServer();
  taken = await new Promise<number>((resolve) =>
    holder.listen(0, "127.0.0.1", () => resolve((holder.address() as { port: number }).port)),
  );
});

afterAll(async () => {
  await new Promise((resolve) => holder.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

const run = inProcessCli();

const inUse = (option: string, port: number) =>
  `cloister: USAGE: ${option} ${port}: cannot listen on 127.0.0.1 (EADDRINUSE): another process holds that port; stop it or choose another ${option} (run with --help for usage)\n`;
const UNRESOLVED =
  /^cloister: USAGE: --listen 0\.0\.0\.0x: cannot listen on it \((ENOTFOUND|EAI_AGAIN)\): expected an IP address of this machine, or a name that resolves to one \(run with --help for usage\)\n$/;

describe("cloister host", () => {
  let args: string[];
  beforeAll(async () => {
    const keys = join(dir, "api-keys.json");
    const record = { id: "k", project: "p", sha256: "ab".repeat(32), permissions: ["attest"], requestsPerMinute: 10 };
    await writeFile(keys, JSON.stringify({ version: 1, keys: [record] }));
    args = ["host", "--enclave-url", "http://127.0.0.1:9", "--api-keys", keys, "--audit-dir", join(dir, "audit")];
  });

  it("a --port another process holds exits 2 naming it", async () => {
    const { code, stderr } = await run([...args, "--port", String(taken)]);
    expect(code).toBe(2);
    expect(stderr).toBe(inUse("--port", taken));
  });

  it("a --listen address that does not resolve exits 2 naming it", async () => {
    const { code, stderr } = await run([...args, "--listen", "0.0.0.0x", "--port", "0"]);
    expect(code).toBe(2);
    expect(stderr).toMatch(UNRESOLVED);
  });
});

describe("cloister kbs serve", () => {
  it("a --port another process holds exits 2 naming it", async () => {
    // A release policy the broker loads (it never releases anything here).
    const { publicJwk: operatorKey } = await generateManifestSigningKey("EdDSA");
    const pins = { measurement: "00".repeat(48), modelSha256: "ab".repeat(32), serviceName: "svc" };
    const policy = simulatorClientPolicy({ tee: "sim-snp", operatorKey, ...pins });
    await writeFile(join(dir, "release-policy.json"), JSON.stringify(policy));
    await writeFile(join(dir, "model.jwk"), JSON.stringify(modelKeyToJwk(generateModelKey("k1"))), { mode: 0o600 });
    await chmod(join(dir, "model.jwk"), 0o600);
    const config = join(dir, "kbs.json");
    await writeFile(
      config,
      JSON.stringify({ version: 1, keys: [{ keyFile: "model.jwk", policy: "release-policy.json" }] }),
    );
    const { code, stderr } = await run(["kbs", "serve", "--config", config, "--port", String(taken)]);
    expect(code).toBe(2);
    expect(stderr).toContain(inUse("--port", taken));
  });
});

describe("cloister enclave: finds out before it boots", () => {
  let args: string[];
  let broker: ReturnType<typeof createHttpServer>;
  /** Requests that reached the key broker (none may: the boot never starts). */
  const brokerRequests: string[] = [];

  beforeAll(async () => {
    broker = createHttpServer((request, response) => {
      brokerRequests.push(`${request.method} ${request.url}`);
      response.writeHead(500).end();
    });
    const brokerPort = await new Promise<number>((resolve) =>
      broker.listen(0, "127.0.0.1", () => resolve((broker.address() as { port: number }).port)),
    );
    const operator = await generateManifestSigningKey("EdDSA");
    const manifest = devManifest({
      model: { sha256: "cd".repeat(32), sizeBytes: 1024, sealedAtRest: true, keyId: "k1" },
    });
    await writeFile(join(dir, "manifest.jws"), await signManifest(manifest, operator.privateJwk));
    await writeFile(join(dir, "operator.public.jwk"), JSON.stringify(operator.publicJwk));
    await writeFile(join(dir, "model.sealed"), Buffer.alloc(1024));
    args = [
      "enclave",
      "--manifest",
      join(dir, "manifest.jws"),
      "--operator-key",
      join(dir, "operator.public.jwk"),
      "--model",
      join(dir, "model.sealed"),
      "--tee",
      "sim-snp",
      "--kbs-url",
      `http://127.0.0.1:${brokerPort}`,
    ];
  });

  afterAll(async () => {
    await new Promise((resolve) => broker.close(resolve));
  });

  it("a --port another process holds exits 2 naming it, before asking the key broker for the model key", async () => {
    const { code, stderr } = await run([...args, "--port", String(taken)]);
    expect(code).toBe(2);
    expect(stderr).toBe(inUse("--port", taken));
    expect(brokerRequests).toEqual([]);
  });

  it("a --listen address that does not resolve exits 2 naming it, before asking the key broker", async () => {
    const { code, stderr } = await run([...args, "--listen", "0.0.0.0x", "--port", "0"]);
    expect(code).toBe(2);
    expect(stderr).toMatch(UNRESOLVED);
    expect(brokerRequests).toEqual([]);
  });
});

describe("cloister up", () => {
  it("reports a taken --enclave-port as its own option, exit 2", async () => {
    const up = await runCloister(
      ["up", "--dir", join(dir, "up"), "--no-sealed-model", "--enclave-port", String(taken), "--host-port", "0"],
      { timeoutMs: 90_000 },
    );
    expect(up.code, up.stderr).toBe(2);
    expect(up.stderr.endsWith(inUse("--enclave-port", taken))).toBe(true);
  }, 120_000);

  it("reports a child's port it cannot listen on as the supervisor's option (a port taken after up checked it)", async () => {
    const files = await prepareDeployment({
      dir: join(dir, "up-child"),
      tee: "sim-snp",
      threads: 1,
      progress: () => {},
      sealedModel: false,
    });
    const log: string[] = [];
    const started = startDeployment({
      files,
      tee: "sim-snp",
      hostPort: 0,
      enclavePort: taken,
      log: (l) => log.push(l),
    });
    await expect(started).rejects.toMatchObject({
      code: "USAGE",
      message: inUse("--enclave-port", taken)
        .replace(/^cloister: USAGE: /, "")
        .trimEnd(),
    });
    expect(log).toContain(`[enclave] ${inUse("--port", taken).trimEnd()}`);
  }, 120_000);

  it("checks its fixed ports before it starts anything: a taken --host-port is the only line, no key broker or enclave booted", async () => {
    const up = await runCloister(
      ["up", "--dir", join(dir, "up-host"), "--host-port", String(taken), "--enclave-port", "0", "--kbs-port", "0"],
      { timeoutMs: 90_000 },
    );
    expect(up).toMatchObject({ code: 2, stderr: inUse("--host-port", taken) });
  }, 120_000);

  it("names every taken port at once (a second cloister up finds all of them taken)", async () => {
    const second = createServer();
    const alsoTaken = await new Promise<number>((resolve) =>
      second.listen(0, "127.0.0.1", () => resolve((second.address() as { port: number }).port)),
    );
    try {
      const up = await runCloister(
        [
          ...["up", "--dir", join(dir, "up-both"), "--host-port", String(taken)],
          ...["--enclave-port", "0", "--kbs-port", String(alsoTaken)],
        ],
        { timeoutMs: 90_000 },
      );
      expect(up).toMatchObject({
        code: 2,
        stderr: `cloister: USAGE: --kbs-port ${alsoTaken}, --host-port ${taken}: cannot listen on 127.0.0.1 (EADDRINUSE): other processes hold these ports (another cloister up?); stop them or choose other ports (run with --help for usage)\n`,
      });
    } finally {
      await new Promise((resolve) => second.close(resolve));
    }
  }, 120_000);

  it("refuses a port given to two of its options, a pool's enclave port another option gives or one beyond 65535, before it starts anything", async () => {
    const up = (ports: string[]) =>
      runCloister(["up", "--dir", join(dir, `up-${ports.join("-")}`), ...ports], { timeoutMs: 90_000 });
    const [twice, pool, beyond] = await Promise.all([
      up(["--host-port", "47811", "--enclave-port", "47811", "--kbs-port", "0"]),
      up(["--host-port", "0", "--enclave-port", "47820", "--enclaves", "3", "--kbs-port", "47822"]),
      up(["--host-port", "0", "--enclave-port", "65535", "--enclaves", "2", "--kbs-port", "0"]),
    ]);
    expect(beyond).toMatchObject({
      code: 2,
      stderr:
        "cloister: USAGE: --enclave-port 65535 (enclave 1 on port 65536): expected a port up to 65535 (a pool takes consecutive ports) (run with --help for usage)\n",
    });
    expect(twice).toMatchObject({
      code: 2,
      stderr:
        "cloister: USAGE: --host-port 47811: expected a port of its own, found the one --enclave-port 47811 gives (run with --help for usage)\n",
    });
    expect(pool).toMatchObject({
      code: 2,
      stderr:
        "cloister: USAGE: --enclave-port 47820 (enclave 2 on port 47822): expected a port of its own, found the one --kbs-port 47822 gives (run with --help for usage)\n",
    });
  }, 120_000);
});
