/**
 * `cloister kbs keygen|check|serve` and `cloister model seal`, run as a user runs them: separate
 * processes, real files, exit codes and one-line errors naming the field (kbs serve's check of the
 * address it bound, in process: no name resolves off loopback here, so that address is injected).
 */
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { chmod, chown, mkdir, readFile, stat, symlink, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { runKbsServe } from "../../attestation/kbs/cli-impl.ts";
import { UsageError } from "../../client/cli/output.ts";
import { simulatorClientPolicy } from "../../client/dev-policy.ts";
import { type ListeningServer, listenBeforeServing } from "../../enclave/http.ts";
import { generateManifestSigningKey } from "../../manifests/sign.ts";
import { encodeGgufHeader } from "../../models/gguf-write.ts";
import { KEY_ID_RULE } from "../../models/key-id.ts";
import { generateModelKey, modelKeyToJwk } from "../../models/sealed.ts";
import { writeTinyModel } from "../../models/tiny.ts";
import { CLI, runCloister } from "../helpers/cli.ts";
import { testDirectory } from "../helpers/test-directory.ts";

const dir = await testDirectory("cloister-kbs-cli-");
let keyPath: string;
let configPath: string;

/** A simulator release policy for `tee` pinning `measurement`, written to `policyFile` with a config naming it. */
async function writeConfig(tee: "sim-snp" | "sim-tdx", measurement: string, policyFile: string, config: string) {
  const operator = await generateManifestSigningKey("EdDSA");
  const policy = simulatorClientPolicy({
    tee,
    measurement,
    operatorKey: operator.publicJwk,
    modelSha256: "ab".repeat(32),
    serviceName: "svc",
  });
  await writeFile(join(dir, policyFile), JSON.stringify(policy));
  await writeFile(config, JSON.stringify({ version: 1, keys: [{ keyFile: "tiny-v1.jwk", policy: policyFile }] }));
  return policy;
}

beforeAll(async () => {
  keyPath = join(dir, "tiny-v1.jwk");
  configPath = join(dir, "kbs.json");
  await writeConfig("sim-snp", "00".repeat(48), "policy.json", configPath);
}, 120_000);

describe("cloister kbs and model seal", () => {
  it("keygen writes a private JWK and never overwrites one", async () => {
    const made = await runCloister(["kbs", "keygen", "--key-id", "tiny-v1", "--out", keyPath]);
    expect(made.code, made.stderr).toBe(0);
    expect((await stat(keyPath)).mode & 0o777).toBe(0o600);
    const jwk = JSON.parse(await readFile(keyPath, "utf8")) as { kty: string; kid: string; k: string };
    expect(jwk).toMatchObject({ kty: "oct", kid: "tiny-v1" });
    expect(Buffer.from(jwk.k, "base64url")).toHaveLength(32);
    expect(made.stdout).not.toContain(jwk.k);

    const again = await runCloister(["kbs", "keygen", "--key-id", "tiny-v1", "--out", keyPath]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain(`--out ${keyPath}: already exists (EEXIST); a model key is never overwritten`);
    expect(JSON.parse(await readFile(keyPath, "utf8"))).toEqual(jwk);

    const badId = await runCloister(["kbs", "keygen", "--key-id", "has space", "--out", join(dir, "x.jwk")]);
    expect(badId.code).toBe(2);
    expect(badId.stderr).toContain('--key-id expects 1..200 characters of A-Z a-z 0-9 . _ : -, found "has space"');

    const noDir = await runCloister(["kbs", "keygen", "--key-id", "x", "--out", join(dir, "keys", "x.jwk")]);
    expect(noDir.code).toBe(2);
    expect(noDir.stderr).toContain(
      `--out ${join(dir, "keys", "x.jwk")}: its directory does not exist (ENOENT); create it first (mkdir -p ${join(dir, "keys")})`,
    );
  });

  it("model seal prints the manifest's model fields for the sealed file", async () => {
    const plain = join(dir, "tiny.gguf");
    await writeTinyModel(plain);
    const out = join(dir, "tiny.gguf.sealed");
    const run = await runCloister(["model", "seal", "--key", keyPath, plain, out, "--json"]);
    expect(run.code, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout) as { manifestModel: Record<string, unknown>; plaintextSha256: string };
    // The 5.7 MB files are compared by their digests: toEqual walks a Buffer element by element (one
    // such comparison took 85 s on a loaded 2-core machine, and this test timed out at 120 s).
    const digestOf = async (path: string) =>
      createHash("sha256")
        .update(await readFile(path))
        .digest("hex");
    const sealedSha256 = await digestOf(out);
    // All six fields of the manifest's model: the file as the enclave shows it and allowModels rules match
    // it (the output's base name), and the parameters `model inspect` counts in the input.
    const inspected = await runCloister(["model", "inspect", plain, "--json"]);
    expect(inspected.code, inspected.stderr).toBe(0);
    const parameters = (JSON.parse(inspected.stdout) as { parameters: number }).parameters;
    expect(parameters).toBeGreaterThan(0);
    expect(result.manifestModel).toEqual({
      file: "tiny.gguf.sealed",
      sha256: sealedSha256,
      sizeBytes: (await stat(out)).size,
      parameters,
      sealedAtRest: true,
      keyId: "tiny-v1",
    });
    expect(result.plaintextSha256).toBe(await digestOf(plain));
    const text = await runCloister(["model", "seal", "--key", keyPath, plain, join(dir, "again.sealed")]);
    expect(text.stdout).toMatch(
      new RegExp(
        `set in the manifest's model: \\{"file":"again\\.sealed","sha256":"[0-9a-f]{64}","sizeBytes":\\d+,"parameters":${parameters},"sealedAtRest":true,"keyId":"tiny-v1"\\}`,
      ),
    );

    // A base name the manifest's model.file refuses is refused before anything is written.
    const spaced = join(dir, "my model.sealed");
    const refused = await runCloister(["model", "seal", "--key", keyPath, plain, spaced]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(
      `<out> ${spaced}: expected a base name the manifest's model.file accepts (a letter or digit, then up to 254 of A-Z a-z 0-9 . _ -), found "my model.sealed"`,
    );
    await expect(stat(spaced)).rejects.toMatchObject({ code: "ENOENT" });

    // A GGUF file without tensors counts 0 parameters, which the manifest's model.parameters refuses
    // (a positive integer): refused before anything is written, not printed as a model to paste; the
    // file's content, not the options: a GGUF refusal as the others, exit 1.
    const empty = join(dir, "empty.gguf");
    await writeFile(empty, encodeGgufHeader([], []).header);
    const emptyOut = join(dir, "empty.gguf.sealed");
    const none = await runCloister(["model", "seal", "--key", keyPath, empty, emptyOut]);
    expect(none.code).toBe(1);
    expect(none.stderr).toBe(
      "cloister: GGUF_BAD_COUNT: tensor_count at offset 8: expected tensors of 1 to 2^53 - 1 parameters in all (what the manifest's model.parameters takes), found 0 in 0 tensor(s)\n",
    );
    await expect(stat(emptyOut)).rejects.toMatchObject({ code: "ENOENT" });

    // The sealed file a manifest pins is not replaced by accident; --force replaces it.
    const again = await runCloister(["model", "seal", "--key", keyPath, plain, out]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/^cloister: MODEL_OUTPUT_EXISTS: .*--force replaces it\)\n$/);
    expect(await digestOf(out)).toBe(sealedSha256);
    const forced = await runCloister(["model", "seal", "--key", keyPath, plain, out, "--force", "--json"]);
    expect(forced.code, forced.stderr).toBe(0);
    expect(await digestOf(out)).not.toBe(sealedSha256); // a fresh salt: a new sealed file
  }, 120_000);

  it("keygen's written line and model seal's sealed line quote a path with a line feed or an ESC (shellWord), as error lines do", async () => {
    const odd = join(dir, "odd\nname\x1b[2J");
    const quoted = (name: string) => `$'${dir}/odd\\nname\\033[2J/${name}'`;
    await mkdir(odd);
    const key = join(odd, "odd-v1.jwk");
    const made = await runCloister(["kbs", "keygen", "--key-id", "odd-v1", "--out", key]);
    expect([made.code, made.stdout]).toEqual([
      0,
      `model key "odd-v1" written to ${quoted("odd-v1.jwk")} (mode 0600)\n`,
    ]);
    const plain = join(odd, "tiny.gguf");
    await writeTinyModel(plain);
    const run = await runCloister(["model", "seal", "--key", key, plain, join(odd, "tiny.sealed")]);
    expect(run.code, run.stderr).toBe(0);
    const line = (run.stdout.split("\n")[0] as string).replace(/\d+ bytes, sha256 [0-9a-f]{64}/, "N bytes, sha256 H");
    expect(line).toBe(
      `sealed ${quoted("tiny.gguf")} (N bytes, sha256 H) into ${quoted("tiny.sealed")} under key "odd-v1"`,
    );
  }, 120_000);

  it("refuses a key file others can read, or a link to one, naming the file and the fix", async () => {
    const shared = join(dir, "shared.jwk");
    await writeFile(shared, await readFile(keyPath));
    await chmod(shared, 0o644);
    const run = await runCloister(["model", "seal", "--key", shared, keyPath, join(dir, "y.sealed")]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("mode expected 0600 (owner only), found 0644; run chmod 600");
    const link = join(dir, "link.jwk");
    await symlink(keyPath, link);
    const linked = await runCloister(["model", "seal", "--key", link, keyPath, join(dir, "z.sealed")]);
    expect(linked.code).toBe(2);
    expect(linked.stderr).toContain(`--key ${link}: a symbolic link; expected the key file itself`);
  });

  it("model seal refuses a key file that names a member twice, as the broker's key files do (JSON.parse kept the last)", async () => {
    const jwk = JSON.parse(await readFile(keyPath, "utf8")) as Record<string, string>;
    const twice = join(dir, "twice.jwk");
    // A reader sees the first "k"; JSON.parse would seal under the second, a key no broker holds.
    const text = JSON.stringify(jwk).replace(/}$/, `,"k":${JSON.stringify(jwk.k?.split("").reverse().join(""))}}`);
    await writeFile(twice, text, { mode: 0o600 });
    await chmod(twice, 0o600);
    const out = join(dir, "twice.sealed");
    const run = await runCloister(["model", "seal", "--key", twice, keyPath, out]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`--key ${twice}: `);
    expect(run.stderr).toContain("k appears twice in one object");
    expect(run.stderr).not.toContain(jwk.k);
    await expect(readFile(out)).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("kbs check lists keys and policies without key material, and names what is wrong in a bad config", async () => {
    const run = await runCloister(["kbs", "check", "--config", configPath, "--json"]);
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({
      keys: [
        {
          keyId: "tiny-v1",
          acceptedEvidence: ["sev-snp"],
          trustSimulator: true,
          allowedModelDigests: ["ab".repeat(32)],
          trustedSigners: 1,
          // The launch measurements the key is released to, as the release policy holds them.
          measurements: { snp: ["00".repeat(48)], tdx: null },
          risks: ["trusts the INSECURE simulator: anyone can forge its evidence"],
        },
      ],
      limits: { challengesPerMinute: 60, releasesPerMinute: 20, maxClients: 5000 },
    });
    const jwk = JSON.parse(await readFile(keyPath, "utf8")) as { k: string };
    expect(run.stdout).not.toContain(jwk.k);
    const human = await runCloister(["kbs", "check", "--config", configPath]);
    expect(human.stdout).toContain('key "tiny-v1": released to sev-snp (INSECURE: the simulator is trusted)');
    expect(human.stdout).toContain("WARNING: trusts the INSECURE simulator");
    expect(human.stdout).toContain(`  SEV-SNP launch measurements: ${"00".repeat(48)}\n`);
    // It ends reminding that a broker already running serves what it read at its start, not these files.
    expect(
      human.stdout.endsWith(
        "\na running cloister kbs serve keeps what it read at its start: restart it to use these files\n",
      ),
    ).toBe(true);
    // Not in --json: that stays one JSON document.
    expect(run.stdout).not.toContain("restart");
    // A TDX release policy: its MRTD and RTMRs (an upgrade adds the new image's before rolling it out).
    const tdxConfig = join(dir, "kbs-tdx.json");
    const tdxPolicy = await writeConfig("sim-tdx", "11".repeat(48), "tdx-policy.json", tdxConfig);
    const tdx = await runCloister(["kbs", "check", "--config", tdxConfig, "--json"]);
    expect(tdx.code, tdx.stderr).toBe(0);
    const tdxAttestation = tdxPolicy.attestation as { tdx: { mrtd: unknown; rtmrs: unknown } };
    expect(JSON.parse(tdx.stdout).keys[0].measurements).toEqual({
      snp: null,
      tdx: { mrtd: tdxAttestation.tdx.mrtd, rtmrs: tdxAttestation.tdx.rtmrs },
    });
    const tdxHuman = await runCloister(["kbs", "check", "--config", tdxConfig]);
    expect(tdxHuman.stdout).toContain(`  TDX MRTD: ${"11".repeat(48)}\n`);
    expect(tdxHuman.stdout).toMatch(/ {2}TDX RTMR0..3: \[.*\]\n/);
    // A release policy that skips measurements gives the key to any guest presenting the (public) manifest.
    const policy = JSON.parse(await readFile(join(dir, "policy.json"), "utf8"));
    policy.attestation.snp.measurements = { skip: { reason: "test" } };
    await writeFile(join(dir, "any-measurement.json"), JSON.stringify(policy));
    const loose = join(dir, "loose.json");
    await writeFile(
      loose,
      JSON.stringify({ version: 1, keys: [{ keyFile: "tiny-v1.jwk", policy: "any-measurement.json" }] }),
    );
    const risky = await runCloister(["kbs", "check", "--config", loose, "--json"]);
    expect(risky.code, risky.stderr).toBe(0);
    expect(JSON.parse(risky.stdout).keys[0].measurements.snp).toEqual({ skip: { reason: "test" } });
    const riskyHuman = await runCloister(["kbs", "check", "--config", loose]);
    expect(riskyHuman.stdout).toContain("  SEV-SNP launch measurements: any (skipped: test)\n");
    expect(JSON.parse(risky.stdout).keys[0].risks).toContain(
      "snp.measurements skipped: any SEV-SNP guest that presents the manifest gets the key",
    );

    const badPolicy = join(dir, "bad-policy.json");
    await writeFile(
      badPolicy,
      JSON.stringify({ version: 1, keys: [{ keyFile: "tiny-v1.jwk", policy: { version: 2 } }] }),
    );
    const bad = await runCloister(["kbs", "check", "--config", badPolicy]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^cloister: USAGE: keys\.0\.policy: version: /m);

    const twice = join(dir, "twice.json");
    const entry = { keyFile: "tiny-v1.jwk", policy: "policy.json" };
    await writeFile(twice, JSON.stringify({ version: 1, keys: [entry, entry] }));
    expect((await runCloister(["kbs", "check", "--config", twice])).stderr).toContain(
      'keys.1: key id "tiny-v1" is listed twice',
    );
    // Whoever can write the configuration or a release policy decides who gets the key.
    const writable = join(dir, "writable.json");
    await writeFile(writable, await readFile(configPath));
    await chmod(writable, 0o666);
    const open = await runCloister(["kbs", "check", "--config", writable]);
    expect(open.code).toBe(2);
    expect(open.stderr).toContain(`--config ${writable}: writable by group or others (mode 0666); run chmod go-w`);
    await chmod(join(dir, "policy.json"), 0o664);
    const openPolicy = await runCloister(["kbs", "check", "--config", configPath]);
    await chmod(join(dir, "policy.json"), 0o644);
    expect(openPolicy.code).toBe(2);
    expect(openPolicy.stderr).toContain(
      `keys.0.policy ${join(dir, "policy.json")}: writable by group or others (mode 0664); run chmod go-w`,
    );

    const missing = await runCloister(["kbs", "check", "--config", join(dir, "nope.json")]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("cannot read");
  });

  it("kbs serve starts, answers a challenge, and stops cleanly on SIGTERM", async () => {
    const child = spawn(process.execPath, [CLI, "kbs", "serve", "--config", configPath, "--port", "0"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const ready = await new Promise<{ url: string; keys: string[] }>((resolve, reject) => {
      createInterface({ input: child.stdout }).once("line", (line) => resolve(JSON.parse(line)));
      child.once("exit", (code) => reject(new Error(`exited ${code}`)));
    });
    expect(ready.keys).toEqual(["tiny-v1"]);
    const response = await fetch(`${ready.url}/v1/kbs/challenge`, { method: "POST" });
    const body = (await response.json()) as { challenge: string };
    expect(Buffer.from(body.challenge, "base64url")).toHaveLength(32);
    const refused = await fetch(`${ready.url}/v1/kbs/release`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ keyId: "tiny-v1", document: "x", challenge: body.challenge, answer: "y" }),
    });
    expect(refused.status).toBe(403);
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    child.kill("SIGTERM");
    expect(await exit).toBe(0);
    expect(stderr).toContain('"outcome":"refused"');
    expect(stderr).toContain('cloister kbs: WARNING: key "tiny-v1": trusts the INSECURE simulator');
    const jwk = JSON.parse(await readFile(keyPath, "utf8")) as { k: string };
    expect(stderr).not.toContain(jwk.k);
  }, 120_000);

  it("kbs serve answers a key released to the simulator on loopback only to requests naming a loopback host (DNS rebinding)", async () => {
    const child = spawn(process.execPath, [CLI, "kbs", "serve", "--config", configPath, "--port", "0"], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    const ready = await new Promise<{ url: string }>((resolve, reject) => {
      createInterface({ input: child.stdout }).once("line", (line) => resolve(JSON.parse(line)));
      child.once("exit", (code) => reject(new Error(`exited ${code}`)));
    });
    // fetch sets Host from the URL; a page rebound to 127.0.0.1 sends its own name.
    const challengeAs = (host: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const url = new URL(`${ready.url}/v1/kbs/challenge`);
        const req = request(url, { method: "POST", headers: { host } }, (res) => {
          let body = "";
          res.on("data", (chunk: Buffer) => {
            body += chunk.toString();
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.once("error", reject);
        req.end();
      });
    const rebound = await challengeAs("rebound.example");
    expect(rebound.status).toBe(421);
    expect(JSON.parse(rebound.body)).toMatchObject({ error: { code: "KBS_HOST_NOT_LOOPBACK" } });
    expect((await challengeAs(new URL(ready.url).host)).status).toBe(200);
    child.kill("SIGTERM");
    expect(await exit).toBe(0);
  }, 120_000);

  it("kbs serve keeps a key released to the simulator on loopback unless told otherwise", async () => {
    const refused = await runCloister(["kbs", "serve", "--config", configPath, "--listen", "0.0.0.0", "--port", "0"]);
    expect(refused.code).toBe(2);
    // One rule, on the address bound, for an address given (here) as for a name that resolves off loopback;
    // bad input of the command line, it ends with the hint every such error ends with.
    expect(refused.stderr).toContain(
      'cloister: USAGE: --listen 0.0.0.0: expected a loopback address (127.0.0.0/8 or ::1): key "tiny-v1" has a release policy that trusts the INSECURE simulator, so it is served on loopback only; found 0.0.0.0, the address it was bound to: listen on 127.0.0.1, or pass --allow-simulator-on-network for a development setup across machines (run with --help for usage)\n',
    );
    // An IPv6 address is shown in brackets, as in a URL ("--listen :::" did not read).
    const refused6 = await runCloister(["kbs", "serve", "--config", configPath, "--listen", "::", "--port", "0"]);
    expect(refused6.code).toBe(2);
    expect(refused6.stderr).toContain("cloister: USAGE: --listen [::]: expected a loopback address");
    expect(refused6.stderr).toContain("found [::], the address it was bound to");
    const child = spawn(
      process.execPath,
      [
        CLI,
        "kbs",
        "serve",
        "--config",
        configPath,
        "--listen",
        "0.0.0.0",
        "--port",
        "0",
        "--allow-simulator-on-network",
      ],
      { stdio: ["ignore", "pipe", "ignore"] },
    );
    const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    const ready = await new Promise<{ url: string }>((resolve, reject) => {
      createInterface({ input: child.stdout }).once("line", (line) => resolve(JSON.parse(line)));
      child.once("exit", (code) => reject(new Error(`exited ${code}`)));
    });
    expect(ready.url).toMatch(/^http:\/\/0\.0\.0\.0:\d+$/);
    child.kill("SIGTERM");
    expect(await exit).toBe(0);
  }, 120_000);

  // The name is taken as loopback from its text (localhost); the address bound says where the key
  // is. No name resolves off loopback on a test machine: run in process, on 127.0.0.1, the address
  // reported as bound replaced with what a `localhost` that resolves to a network address (a bad
  // /etc/hosts) binds.
  const boundOffLoopback =
    (servers: ListeningServer[]): typeof listenBeforeServing =>
    async (meanwhile, _hostname, port, options) => {
      // On 127.0.0.1 whatever `localhost` resolves to here (::1 first on some machines), as the
      // tests reach it.
      const server = { ...(await listenBeforeServing(meanwhile, "127.0.0.1", port, options)), address: "192.0.2.7" };
      servers.push(server);
      return server;
    };

  it("kbs serve --listen a name refuses it bound off loopback, after listening and before saying ready, and stops listening", async () => {
    const servers: ListeningServer[] = [];
    const stdout = vi.spyOn(process.stdout, "write").mockImplementation(() => true);
    try {
      const served = runKbsServe({ config: configPath, listen: "localhost", port: 0 }, boundOffLoopback(servers));
      await expect(served).rejects.toThrow(UsageError);
      await expect(served).rejects.toThrow(
        '--listen localhost: expected a loopback address (127.0.0.0/8 or ::1): key "tiny-v1" has a release policy that trusts the INSECURE simulator, so it is served on loopback only; found 192.0.2.7, the address it was bound to: listen on 127.0.0.1, or pass --allow-simulator-on-network for a development setup across machines (run with --help for usage)',
      );
      expect(servers).toHaveLength(1);
      await expect(fetch(`http://127.0.0.1:${servers[0]?.port}/healthz`)).rejects.toThrow();
      expect(stdout.mock.calls.join("")).not.toContain("ready");
    } finally {
      stdout.mockRestore();
    }
  }, 30_000);

  /**
   * Runs `kbs serve` in process until its ready line, posts a challenge request with `host` as its
   * Host header, stops it (SIGTERM), and returns the status the broker answered.
   */
  async function challengeStatusWithHost(
    options: Parameters<typeof runKbsServe>[0],
    host: string,
    listenFirst?: typeof listenBeforeServing,
  ): Promise<number> {
    const lines: string[] = [];
    const stdout = vi.spyOn(process.stdout, "write").mockImplementation((chunk) => {
      lines.push(String(chunk));
      return true;
    });
    const stderr = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    try {
      const served = runKbsServe(options, listenFirst);
      const failed = served.then(
        () => "stopped",
        (error: unknown) => error,
      );
      while (lines.length === 0) {
        const early = await Promise.race([failed, new Promise((r) => setTimeout(r, 10))]);
        if (early !== undefined) throw early;
      }
      const ready = JSON.parse(lines.join("").trim().split("\n")[0] as string) as { event: string; url: string };
      expect(ready.event).toBe("ready");
      const answer = await new Promise<number>((resolve, reject) => {
        const req = request(
          {
            host: "127.0.0.1",
            port: new URL(ready.url).port,
            path: "/v1/kbs/challenge",
            method: "POST",
            headers: { host },
          },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.once("error", reject);
        req.end();
      });
      process.emit("SIGTERM");
      await served;
      return answer;
    } finally {
      stdout.mockRestore();
      stderr.mockRestore();
    }
  }

  it("kbs serve --allow-simulator-on-network serves a --listen name bound off loopback, answering any Host", async () => {
    // A client across machines names the host as it reaches it: no loopback Host check.
    const options = { config: configPath, listen: "localhost", port: 0, allowSimulatorOnNetwork: true };
    expect(await challengeStatusWithHost(options, "192.0.2.7", boundOffLoopback([]))).toBe(200);
  }, 30_000);

  it("kbs serve --allow-simulator-on-network bound on loopback still refuses a Host off loopback (421)", async () => {
    // A page elsewhere that makes a browser on this machine post to the broker names its own host:
    // the flag widens where the broker may listen, not which Host a loopback broker answers.
    const options = { config: configPath, listen: "127.0.0.1", port: 0, allowSimulatorOnNetwork: true };
    expect(await challengeStatusWithHost(options, "evil.example")).toBe(421);
  }, 30_000);

  it("every kbs command has --help, and the enclave refuses a --kbs-url that is not a URL", async () => {
    for (const args of [["kbs"], ["kbs", "serve"], ["kbs", "keygen"], ["kbs", "check"], ["model", "seal"]]) {
      const run = await runCloister([...args, "--help"]);
      expect(run.code, args.join(" ")).toBe(0);
      expect(run.stdout).toContain("Usage: cloister");
    }
    // --key-id's help states models/key-id.ts's rule, the one keygen enforces.
    const keygenHelp = await runCloister(["kbs", "keygen", "--help"]);
    expect(keygenHelp.stdout.replace(/\s+/g, " ")).toContain(KEY_ID_RULE);
    const withKbsUrl = (url: string) =>
      runCloister([
        "enclave",
        "--manifest",
        "m",
        "--operator-key",
        "k",
        "--model",
        "x",
        "--tee",
        "sim-snp",
        "--kbs-url",
        url,
      ]);
    const bad = await withKbsUrl("not a url");
    expect(bad.code).toBe(2);
    // Bad input of the command line: it ends as every such refusal does, --help named.
    expect(bad.stderr).toContain(
      '--kbs-url: expected an http(s) URL without user name, password, query or fragment, found "not a url" (run with --help for usage)\n',
    );
    // A URL that carries a secret is refused without repeating it (the message reaches the log).
    for (const secretUrl of ["http://kbs-user:s3cret-pw@kbs.internal", "http://kbs.internal/?token=s3cret-pw"]) {
      const withSecret = await withKbsUrl(secretUrl);
      expect(withSecret.code).toBe(2);
      expect(withSecret.stderr).toContain("--kbs-url: expected an http(s) URL without user name");
      expect(withSecret.stderr).not.toContain("s3cret-pw");
    }

    // Files the options name: a missing one, or a key that is not JSON, is named with its option.
    const enclave = (manifest: string, key: string) =>
      runCloister(["enclave", "--manifest", manifest, "--operator-key", key, "--model", "x", "--tee", "sim-snp"]);
    const noManifest = await enclave(join(dir, "none.jws"), join(dir, "none.jwk"));
    expect(noManifest.code).toBe(2);
    expect(noManifest.stderr).toContain(
      `cloister: USAGE: --manifest ${join(dir, "none.jws")}: cannot read (ENOENT: no such file; check the path)`,
    );
    await writeFile(join(dir, "m.jws"), "a.b.c\n");
    await writeFile(join(dir, "k.jwk"), "not json");
    const badKey = await enclave(join(dir, "m.jws"), join(dir, "k.jwk"));
    expect(badKey.code).toBe(2);
    expect(badKey.stderr).toContain(
      `--operator-key ${join(dir, "k.jwk")}: expected a public JWK, found text that is not valid JSON\n`,
    );
  }, 120_000);
});

describe("broker configuration errors", () => {
  it("say what was expected and what was found", async () => {
    const { loadBrokerConfig } = await import("../../attestation/kbs/config.ts");
    const file = join(dir, "kbs-v2.json");
    await writeFile(file, JSON.stringify({ version: 2, keys: [] }), { mode: 0o600 });
    await expect(loadBrokerConfig(file)).rejects.toMatchObject({
      code: "KBS_CONFIG_INVALID",
      message: "broker config version: expected 1, found 2",
    });
    // Text that is not JSON: where it goes wrong, never what it holds (a key file holds a secret).
    const cut = join(dir, "kbs-cut.json");
    await writeFile(cut, '{"version": 1, "keys": [', { mode: 0o600 });
    await expect(loadBrokerConfig(cut)).rejects.toMatchObject({
      code: "KBS_CONFIG_INVALID",
      message: `--config ${cut}: not valid JSON (it ends early)`,
    });
    const secret = "c2VjcmV0LW1vZGVsLWtleS1ieXRlcy0zMi1sb25nISE";
    await writeFile(join(dir, "cut.jwk"), `{"kty": "oct", "k": "${secret}",, }`, { mode: 0o600 });
    const withKey = join(dir, "kbs-cut-key.json");
    await writeFile(withKey, JSON.stringify({ version: 1, keys: [{ keyFile: "cut.jwk", policy: "p.json" }] }), {
      mode: 0o600,
    });
    const keyError = (await loadBrokerConfig(withKey).catch((e: Error) => e)) as Error;
    expect(keyError.message).toBe(`keys.0.keyFile ${join(dir, "cut.jwk")}: not valid JSON (at position 66)`);
    expect(String(keyError.cause ?? "")).not.toContain(secret);
  });

  it("name a key file that opens but cannot be read (EIO) as a configuration error, its errno, and keep the cause", async () => {
    const { loadBrokerConfig } = await import("../../attestation/kbs/config.ts");
    // /proc/self/mem: a regular file of this user's, mode 0600, that opens; reading it from offset
    // 0 fails with EIO, as a failing disk does.
    const file = join(dir, "kbs-unreadable-key.json");
    await writeFile(file, JSON.stringify({ version: 1, keys: [{ keyFile: "/proc/self/mem", policy: "p.json" }] }), {
      mode: 0o600,
    });
    const error = (await loadBrokerConfig(file).catch((e: Error) => e)) as Error & { code?: string };
    expect(error).toMatchObject({
      code: "KBS_CONFIG_INVALID",
      message: "keys.0.keyFile /proc/self/mem: cannot read (EIO)",
    });
    expect(error.cause).toMatchObject({ code: "EIO" });
  });

  it("never print a value that may be secret (a key put in the wrong field), only its kind", async () => {
    const { loadBrokerConfig } = await import("../../attestation/kbs/config.ts");
    const { parseClientPolicy } = await import("../../client/policy.ts");
    const secret = "c2VjcmV0LW1vZGVsLWtleS1ieXRlcy0zMi1sb25nISE";
    const file = join(dir, "kbs-inline-key.json");
    await writeFile(
      file,
      JSON.stringify({ version: 1, keys: [{ keyFile: { kty: "oct", k: secret }, policy: "p.json" }] }),
      {
        mode: 0o600,
      },
    );
    const broker = await loadBrokerConfig(file).catch((e: Error) => e);
    expect(broker).toBeInstanceOf(Error);
    expect((broker as Error).message).toBe(
      "broker config keys.0.keyFile: expected string, found an object with keys kty, k",
    );
    const policy = (() => {
      try {
        parseClientPolicy({
          version: 1,
          acceptedEvidence: ["sev-snp"],
          attestation: {},
          manifest: {
            trustedSigners: { kty: "OKP", crv: "Ed25519", d: secret, x: "x" },
            allowedModelDigests: { skip: { reason: "test" } },
            allowedServices: { skip: { reason: "test" } },
          },
        });
      } catch (error) {
        return error as Error;
      }
      throw new Error("expected the policy to be refused");
    })();
    // The first of every problem listed (the empty attestation section's follow).
    expect(policy.message).toMatch(
      /^client policy: manifest\.trustedSigners: expected array, found an object with keys kty, crv, d, x; /,
    );
    expect(policy.message).not.toContain(secret);
    expect(JSON.stringify(policy.cause ?? null)).not.toContain(secret);
    // Nor a secret used as a field name.
    const named = join(dir, "kbs-secret-name.json");
    await writeFile(
      named,
      JSON.stringify({ version: 1, keys: [{ keyFile: "k.jwk", policy: "p.json" }], [secret]: 1 }),
      { mode: 0o600 },
    );
    const unknown = await loadBrokerConfig(named).catch((e: Error) => e);
    expect((unknown as Error).message).not.toContain(secret);
    expect((unknown as Error).message).toContain("names not shown");
  });
});

describe("broker configuration files belong to this user", () => {
  it("refuses a configuration, policy or key file another user owns (its owner could rewrite who gets the key)", async () => {
    const { loadBrokerConfig } = await import("../../attestation/kbs/config.ts");
    // Copies owned by `owner` (not root: root's files are always accepted), checked as user `reader`.
    const copy = join(dir, "owned");
    await mkdir(copy);
    for (const name of ["kbs.json", "policy.json", "tiny-v1.jwk"]) {
      await writeFile(join(copy, name), await readFile(join(dir, name)), {
        mode: name.endsWith(".jwk") ? 0o600 : 0o644,
      });
    }
    const me = process.getuid?.() ?? 1000;
    let owner = me;
    if (me === 0) {
      owner = 4242; // as root, hand the copies to another user
      for (const name of ["kbs.json", "policy.json", "tiny-v1.jwk"]) await chown(join(copy, name), owner, owner);
    }
    const reader = owner + 1;
    // The fix is root's ownership, not the reader's: a broker run as its own user must not be able to
    // rewrite who gets the key (a key file, which only its owner may read, is the reader's to own).
    const config = join(copy, "kbs.json");
    await expect(loadBrokerConfig(config, { uid: reader })).rejects.toThrow(
      `--config ${config}: owned by uid ${owner}; expected this user's (uid ${reader}) or root's, since its owner can rewrite it (chown root ${config}, which this user cannot rewrite either)`,
    );
    // Read as root, the fix is the same, without saying root could not rewrite it: root can.
    await expect(loadBrokerConfig(config, { uid: 0 }).catch((error: Error) => error.message)).resolves.toBe(
      `--config ${config}: owned by uid ${owner}; expected this user's (uid 0) or root's, since its owner can rewrite it (chown root ${config})`,
    );
    // Their owner loads them.
    expect((await loadBrokerConfig(join(copy, "kbs.json"), { uid: owner })).keys.map((k) => k.keyId)).toEqual([
      "tiny-v1",
    ]);
  });
});

describe("broker files that are not regular files", () => {
  it("refuses a key, policy or configuration file that is a FIFO at once, instead of waiting for a writer", async () => {
    const fifos = join(dir, "fifos");
    await mkdir(fifos);
    execFileSync("mkfifo", ["-m", "0600", join(fifos, "key.jwk"), join(fifos, "policy.json"), join(fifos, "kbs.json")]);
    await writeFile(
      join(fifos, "key-fifo.json"),
      JSON.stringify({ version: 1, keys: [{ keyFile: "key.jwk", policy: join(dir, "policy.json") }] }),
    );
    await writeFile(join(fifos, "tiny.jwk"), JSON.stringify(modelKeyToJwk(generateModelKey("tiny-v1"))), {
      mode: 0o600,
    });
    await writeFile(
      join(fifos, "policy-fifo.json"),
      JSON.stringify({ version: 1, keys: [{ keyFile: "tiny.jwk", policy: "policy.json" }] }),
    );
    const cases = [
      ["key-fifo.json", `keys.0.keyFile ${join(fifos, "key.jwk")}: not a regular file`],
      ["policy-fifo.json", `keys.0.policy ${join(fifos, "policy.json")}: not a regular file`],
      ["kbs.json", `--config ${join(fifos, "kbs.json")}: not a regular file`],
    ] as const;
    for (const [config, expected] of cases) {
      const run = await runCloister(["kbs", "check", "--config", join(fifos, config)], { timeoutMs: 15_000 });
      expect(run.code, config).toBe(2);
      expect(run.stderr).toContain(expected);
    }
    // model seal reads its --key the same way.
    const seal = await runCloister(["model", "seal", "--key", join(fifos, "key.jwk"), "in.gguf", "out.sealed"], {
      timeoutMs: 15_000,
    });
    expect(seal.code).toBe(2);
    expect(seal.stderr).toContain(`--key ${join(fifos, "key.jwk")}: not a regular file`);
  }, 120_000);
});

/** Writes a broker configuration with `limits` (the test's key and policy) and returns its path. */
async function configWithLimits(name: string, limits: unknown): Promise<string> {
  const file = join(dir, name);
  await writeFile(
    file,
    JSON.stringify({ version: 1, keys: [{ keyFile: "tiny-v1.jwk", policy: "policy.json" }], limits }),
  );
  return file;
}

/** POSTs to the broker from `localAddress` (a loopback address) and resolves with status and code. */
function post(
  url: string,
  localAddress: string,
  body?: unknown,
): Promise<{ status: number; code: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: "POST", localAddress, headers: { "content-type": "application/json" } },
      (res) => {
        let text = "";
        res.on("data", (chunk: Buffer) => {
          text += chunk.toString();
        });
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            code: (JSON.parse(text) as { error?: { code: string } }).error?.code,
          }),
        );
      },
    );
    req.once("error", reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

describe("the broker's limits per client address, from its configuration", () => {
  it("kbs serve applies them, with room for every challenge they admit", async () => {
    // 100 000 addresses × 2 attempts: twice what the default spent-challenge bound holds, so the
    // broker must be sized from these limits or createBrokerApp refuses it.
    const config = await configWithLimits("kbs-limits.json", {
      challengesPerMinute: 3,
      releasesPerMinute: 2,
      maxClients: 100_000,
    });
    const check = await runCloister(["kbs", "check", "--config", config]);
    expect(check.code, check.stderr).toBe(0);
    expect(check.stdout).toContain(
      "limits per client address: 3 challenges and 2 release attempts a minute, at most 100000 addresses at once",
    );
    const child = spawn(process.execPath, [CLI, "kbs", "serve", "--config", config, "--port", "0"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    try {
      const ready = await new Promise<{ url: string }>((resolve, reject) => {
        createInterface({ input: child.stdout }).once("line", (line) => resolve(JSON.parse(line)));
        child.once("exit", (code) => reject(new Error(`exited ${code}: ${stderr}`)));
      });
      const release = `${ready.url}/v1/kbs/release`;
      const attempt = { keyId: "tiny-v1", document: "x", challenge: "y", answer: "z" };
      expect((await post(release, "127.0.0.1", attempt)).code).toBe("KBS_CHALLENGE_UNKNOWN");
      expect((await post(release, "127.0.0.1", attempt)).code).toBe("KBS_CHALLENGE_UNKNOWN");
      expect(await post(release, "127.0.0.1", attempt)).toEqual({ status: 429, code: "KBS_RATE_LIMITED" });
      // Another address has its own budget.
      expect((await post(release, "127.0.0.2", attempt)).code).toBe("KBS_CHALLENGE_UNKNOWN");
      const challenge = `${ready.url}/v1/kbs/challenge`;
      for (let i = 0; i < 3; i++) expect((await post(challenge, "127.0.0.1")).status).toBe(200);
      expect(await post(challenge, "127.0.0.1")).toEqual({ status: 429, code: "KBS_RATE_LIMITED" });
    } finally {
      child.kill("SIGTERM");
    }
    expect(await exit).toBe(0);
    expect(stderr).toContain("over 2 release attempts a minute from this address");
  }, 120_000);

  it("kbs serve holds at most MAX_CONNECTIONS_PER_CLIENT connections from one address: one stranger cannot take them all", async () => {
    const { MAX_CONNECTIONS_PER_CLIENT } = await import("../../attestation/kbs/server.ts");
    const child = spawn(process.execPath, [CLI, "kbs", "serve", "--config", configPath, "--port", "0"], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    const held: Socket[] = [];
    try {
      const ready = await new Promise<{ url: string }>((resolve, reject) => {
        createInterface({ input: child.stdout }).once("line", (line) => resolve(JSON.parse(line)));
        child.once("exit", (code) => reject(new Error(`exited ${code}`)));
      });
      const port = Number(new URL(ready.url).port);
      const open = async (localAddress: string) => {
        const socket = connect({ port, host: "127.0.0.1", localAddress });
        socket.on("error", () => {});
        await new Promise((r) => socket.once("connect", r));
        return socket;
      };
      for (let i = 0; i < MAX_CONNECTIONS_PER_CLIENT; i++) held.push(await open("127.0.0.2"));
      // The next one from that address is closed as it comes, unanswered.
      const extra = await open("127.0.0.2");
      const closed = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 5000);
        extra.once("close", () => {
          clearTimeout(timer);
          resolve(true);
        });
      });
      expect(closed).toBe(true);
      // Another address is served.
      expect((await post(`${ready.url}/v1/kbs/challenge`, "127.0.0.3")).status).toBe(200);
    } finally {
      for (const socket of held) socket.destroy();
      child.kill("SIGTERM");
    }
    expect(await exit).toBe(0);
  }, 120_000);

  it("kbs serve counts at most maxClients addresses at once", async () => {
    const config = await configWithLimits("kbs-one-client.json", { maxClients: 1 });
    const child = spawn(process.execPath, [CLI, "kbs", "serve", "--config", config, "--port", "0"], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    try {
      const ready = await new Promise<{ url: string }>((resolve, reject) => {
        createInterface({ input: child.stdout }).once("line", (line) => resolve(JSON.parse(line)));
        child.once("exit", (code) => reject(new Error(`exited ${code}`)));
      });
      const challenge = `${ready.url}/v1/kbs/challenge`;
      expect((await post(challenge, "127.0.0.1")).status).toBe(200);
      expect(await post(challenge, "127.0.0.2")).toEqual({ status: 503, code: "KBS_BUSY" });
    } finally {
      child.kill("SIGTERM");
    }
    expect(await exit).toBe(0);
  }, 120_000);

  it("refuses limits that are not positive integers within bounds, naming the field (exit 2)", async () => {
    const cases: [unknown, string][] = [
      [{ releasesPerMinute: 0 }, "limits.releasesPerMinute: expected a number >= 1, found 0"],
      [{ challengesPerMinute: 2.5 }, "limits.challengesPerMinute: expected int, found 2.5"],
      [{ maxClients: "5000" }, "limits.maxClients: expected number, found a string"],
      [{ maxClients: 2_000_000 }, "limits.maxClients: expected a number <= 1000000, found 2000000"],
      [
        { maxClients: 100_000, releasesPerMinute: 100 },
        "limits: maxClients × releasesPerMinute expected at most 1000000 (the broker keeps every challenge they spend for a challenge lifetime), found 100000 × 100 = 10000000",
      ],
      [{ releasesPerMinut: 30 }, "limits.releasesPerMinut: expected no such field, found 30"],
      [[], "limits: expected object, found an empty array"],
    ];
    for (const [i, [limits, message]] of cases.entries()) {
      const config = await configWithLimits(`kbs-bad-limits-${i}.json`, limits);
      const run = await runCloister(["kbs", "check", "--config", config]);
      expect(run.code, `${JSON.stringify(limits)}: ${run.stderr}`).toBe(2);
      expect(run.stderr).toContain(`cloister: USAGE: broker config ${message}`);
    }
    // kbs serve reads the same configuration: refused before it listens.
    const serve = await runCloister(["kbs", "serve", "--config", join(dir, "kbs-bad-limits-0.json"), "--port", "0"]);
    expect(serve.code).toBe(2);
    expect(serve.stderr).toContain("cloister: USAGE: broker config limits.releasesPerMinute: expected a number >= 1");
  }, 120_000);
});
