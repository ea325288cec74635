import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { keygenCommand } from "../../manifests/cli-impl.ts";
import { DEV_MANIFEST } from "../../manifests/dev.ts";
import { digestHex, manifestDigest } from "../../manifests/digest.ts";
import { runCloister } from "../helpers/cli.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "cloister-manifest-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cloister = (...args: string[]) => runCloister(args, { cwd: dir, timeoutMs: 30_000 });

const p = (name: string) => join(dir, name);

describe("cloister manifest (CLI)", () => {
  it("keygen → sign → verify for EdDSA and ES256, private key mode 0600 and never printed", async () => {
    // Both algorithms run side by side (each step spawns the CLI).
    const roundTrip = async (alg: string) => {
      const keygen = await cloister(
        "manifest",
        "keygen",
        "--out-private",
        p(`${alg}.jwk`),
        "--out-public",
        p(`${alg}.pub.jwk`),
        "--alg",
        alg,
        "--json",
      );
      expect(keygen.code).toBe(0);
      const privateJwk = JSON.parse(readFileSync(p(`${alg}.jwk`), "utf8"));
      expect(statSync(p(`${alg}.jwk`)).mode & 0o777).toBe(0o600);
      expect(keygen.stdout).not.toContain(privateJwk.d);
      const { thumbprint } = JSON.parse(keygen.stdout);
      expect(privateJwk.kid).toBe(thumbprint);

      const sign = await cloister(
        "manifest",
        "sign",
        "--key",
        p(`${alg}.jwk`),
        join(ROOT, "manifests/examples/dev.json"),
        p(`dev-${alg}.jws`),
      );
      expect(sign.code).toBe(0);
      expect(sign.stdout).not.toContain(privateJwk.d);
      const jws = readFileSync(p(`dev-${alg}.jws`), "utf8");
      const digest = digestHex(await manifestDigest(jws));

      const verify = await cloister("manifest", "verify", "--key", p(`${alg}.pub.jwk`), p(`dev-${alg}.jws`), "--json");
      expect(verify.code).toBe(0);
      expect(JSON.parse(verify.stdout)).toEqual({
        service: DEV_MANIFEST.service,
        model: { file: DEV_MANIFEST.model.file, sha256: DEV_MANIFEST.model.sha256 },
        signerKeyThumbprint: thumbprint,
        digest,
      });

      const human = await cloister("manifest", "verify", "--key", p(`${alg}.pub.jwk`), p(`dev-${alg}.jws`));
      expect(human.stdout).toContain(`manifest digest: ${digest}`);
      expect(human.stdout).toContain(`signer:          ${thumbprint}`);
    };
    await Promise.all(["EdDSA", "ES256"].map(roundTrip));
  });

  it("fails with one clear line: wrong key, tampered file, existing key file, bad manifest, missing option", async () => {
    await Promise.all([
      cloister("manifest", "keygen", "--out-private", p("a.jwk"), "--out-public", p("a.pub.jwk")),
      cloister("manifest", "keygen", "--out-private", p("b.jwk"), "--out-public", p("b.pub.jwk")),
    ]);
    await cloister("manifest", "sign", "--key", p("a.jwk"), join(ROOT, "manifests/examples/dev.json"), p("a.jws"));

    const [h, , sig] = readFileSync(p("a.jws"), "utf8").split(".");
    const evil = { ...DEV_MANIFEST, inference: { ...DEV_MANIFEST.inference, maxTokens: 2048 } };
    writeFileSync(p("evil.jws"), `${h}.${Buffer.from(JSON.stringify(evil)).toString("base64url")}.${sig}`);
    writeFileSync(p("bad.json"), JSON.stringify({ ...DEV_MANIFEST, extra: true }));

    // Independent failures, spawned side by side.
    const [wrongKey, eitherKey, tampered, privateAsTrusted, exists, bad, check, usage] = await Promise.all([
      cloister("manifest", "verify", "--key", p("b.pub.jwk"), p("a.jws")),
      cloister("manifest", "verify", "--key", p("b.pub.jwk"), "--key", p("a.pub.jwk"), p("a.jws")),
      cloister("manifest", "verify", "--key", p("a.pub.jwk"), p("evil.jws")),
      cloister("manifest", "verify", "--key", p("a.jwk"), p("a.jws")),
      cloister("manifest", "keygen", "--out-private", p("a.jwk"), "--out-public", p("c.pub.jwk")),
      cloister("manifest", "sign", "--key", p("a.jwk"), p("bad.json"), p("bad.jws")),
      cloister("manifest", "check", p("bad.json"), "--json"),
      cloister("manifest", "verify", p("a.jws")),
    ]);
    expect(wrongKey.code).toBe(1);
    expect(wrongKey.stderr.trim().split("\n")).toHaveLength(1);
    expect(wrongKey.stderr).toMatch(/^cloister: MANIFEST_SIGNATURE_INVALID: /);
    // Which key was given and which one the manifest says signed it (keygen's kid is its thumbprint).
    const kid = (file: string) => JSON.parse(readFileSync(p(file), "utf8")).kid as string;
    expect(wrongKey.stderr).toContain(`a trusted key (${kid("b.pub.jwk")}), found none that verifies`);
    expect(wrongKey.stderr).toContain(`names signer kid ${kid("a.pub.jwk")} (unverified), not a trusted key`);

    // Either trusted key may sign: --key repeats.
    expect(eitherKey.code).toBe(0);

    expect(tampered.code).toBe(1);
    expect(tampered.stderr).toMatch(/^cloister: MANIFEST_SIGNATURE_INVALID: /);

    // Bad input (a key, a file, a field) exits 2; a signature that does not verify, 1.
    expect(privateAsTrusted.code).toBe(2);
    expect(privateAsTrusted.stderr).toMatch(/^cloister: MANIFEST_KEY_INVALID: /);

    expect(exists.code).toBe(2);
    expect(exists.stderr).toMatch(/^cloister: MANIFEST_FILE: --out-private .*already exists/);

    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^cloister: MANIFEST_FIELD_UNKNOWN: manifest field extra/);

    expect(check.code).toBe(2);
    expect(JSON.parse(check.stdout)).toMatchObject({ valid: false, code: "MANIFEST_FIELD_UNKNOWN" });

    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("--key");
  });

  it("exits 2 for an unreadable or malformed input file (bad input), 1 for a signature that does not verify", async () => {
    await cloister("manifest", "keygen", "--out-private", p("m.jwk"), "--out-public", p("m.pub.jwk"));
    writeFileSync(p("not-json.json"), "{ not json");
    writeFileSync(p("not-jws.jws"), "not a jws");
    const [missing, notJson, notJws] = await Promise.all([
      cloister("manifest", "check", p("no-such.json")),
      cloister("manifest", "check", p("not-json.json")),
      cloister("manifest", "verify", "--key", p("m.pub.jwk"), p("not-jws.jws")),
    ]);
    expect({ code: missing.code, stderr: missing.stderr }).toEqual({
      code: 2,
      stderr: `cloister: MANIFEST_FILE: manifest ${p("no-such.json")}: could not be read (ENOENT: no such file; check the path)\n`,
    });
    // Where the text goes wrong, never what it holds.
    expect({ code: notJson.code, stderr: notJson.stderr }).toEqual({
      code: 2,
      stderr: `cloister: MANIFEST_PAYLOAD_INVALID: manifest ${p("not-json.json")}: expected JSON, found text that is not valid JSON (at position 2)\n`,
    });
    expect(notJws.code).toBe(2);
    expect(notJws.stderr).toMatch(/^cloister: MANIFEST_JWS_MALFORMED: /);
  });

  it("reads input files to a bound and as strict UTF-8, naming the option, the file and the bound", async () => {
    await cloister("manifest", "keygen", "--out-private", p("b.jwk"), "--out-public", p("b.pub.jwk"));
    // Sparse files one byte past each bound: all zero bytes, none of them written out.
    writeFileSync(p("huge.jws"), "");
    truncateSync(p("huge.jws"), 4 * 1024 * 1024 + 1);
    writeFileSync(p("huge.json"), "");
    truncateSync(p("huge.json"), 4 * 1024 * 1024 + 1);
    writeFileSync(p("huge.jwk"), "");
    truncateSync(p("huge.jwk"), 64 * 1024 + 1);
    // Read loosely, 0xff would be U+FFFD: a manifest whose bytes are not the ones a reader sees.
    writeFileSync(
      p("latin1.json"),
      Buffer.concat([Buffer.from('{"service":"caf'), Buffer.from([0xff]), Buffer.from('"}')]),
    );
    const [jws, json, jwk, latin1] = await Promise.all([
      cloister("manifest", "verify", "--key", p("b.pub.jwk"), p("huge.jws")),
      cloister("manifest", "check", p("huge.json")),
      cloister("manifest", "verify", "--key", p("huge.jwk"), p("huge.jws")),
      cloister("manifest", "check", p("latin1.json")),
    ]);
    const manifestBound = "4194304 bytes (a manifest travels whole in the attestation document, read to 4 MiB)";
    expect({ code: jws.code, stderr: jws.stderr }).toEqual({
      code: 2,
      stderr: `cloister: USAGE: signed manifest ${p("huge.jws")}: expected at most ${manifestBound}, found more\n`,
    });
    expect({ code: json.code, stderr: json.stderr }).toEqual({
      code: 2,
      stderr: `cloister: USAGE: manifest ${p("huge.json")}: expected at most ${manifestBound}, found more\n`,
    });
    expect({ code: jwk.code, stderr: jwk.stderr }).toEqual({
      code: 2,
      stderr: `cloister: USAGE: --key ${p("huge.jwk")}: expected at most 65536 bytes (one Ed25519 or P-256 JWK, a few hundred bytes), found more\n`,
    });
    expect({ code: latin1.code, stderr: latin1.stderr }).toEqual({
      code: 2,
      stderr: `cloister: USAGE: manifest ${p("latin1.json")}: expected UTF-8 text, found a byte that is not UTF-8 (byte 16 of the file)\n`,
    });
  });

  it("verify --key and sign --key refuse a key whose use, key_ops or alg says it is not for this, naming the file and the member", async () => {
    await cloister("manifest", "keygen", "--out-private", p("u.jwk"), "--out-public", p("u.pub.jwk"));
    await cloister("manifest", "sign", "--key", p("u.jwk"), join(ROOT, "manifests/examples/dev.json"), p("u.jws"));
    const publicJwk = JSON.parse(readFileSync(p("u.pub.jwk"), "utf8"));
    const privateJwk = JSON.parse(readFileSync(p("u.jwk"), "utf8"));
    writeFileSync(p("u-enc.pub.jwk"), JSON.stringify({ ...publicJwk, use: "enc" }));
    writeFileSync(p("u-es256.pub.jwk"), JSON.stringify({ ...publicJwk, alg: "ES256" }));
    writeFileSync(p("u-ops.jwk"), JSON.stringify({ ...privateJwk, key_ops: ["verify"] }));
    writeFileSync(p("u-sign.jwk"), JSON.stringify({ ...privateJwk, key_ops: ["sign"] }));
    const [enc, es256, ops, signOnly] = await Promise.all([
      cloister("manifest", "verify", "--key", p("u-enc.pub.jwk"), p("u.jws")),
      cloister("manifest", "verify", "--key", p("u.pub.jwk"), "--key", p("u-es256.pub.jwk"), p("u.jws")),
      cloister("manifest", "sign", "--key", p("u-ops.jwk"), join(ROOT, "manifests/examples/dev.json"), p("u2.jws")),
      cloister("manifest", "sign", "--key", p("u-sign.jwk"), join(ROOT, "manifests/examples/dev.json"), p("u3.jws")),
    ]);
    expect({ code: enc.code, stderr: enc.stderr }).toEqual({
      code: 2,
      stderr: `cloister: MANIFEST_KEY_INVALID: --key ${p("u-enc.pub.jwk")}: use: expected "sig" (a key for signatures), found "enc"\n`,
    });
    expect({ code: es256.code, stderr: es256.stderr }).toEqual({
      code: 2,
      stderr: `cloister: MANIFEST_KEY_INVALID: --key ${p("u-es256.pub.jwk")}: alg: expected "EdDSA" (an Ed25519 key signs only EdDSA), found "ES256"\n`,
    });
    expect({ code: ops.code, stderr: ops.stderr }).toEqual({
      code: 2,
      stderr: `cloister: MANIFEST_KEY_INVALID: --key ${p("u-ops.jwk")}: key_ops: expected an array including "sign", found ["verify"]\n`,
    });
    // A private key whose key_ops say "sign" signs; sign's own check of the result uses its public part.
    expect(signOnly.code).toBe(0);
  });

  it("check without --json lists every violation, one a line on stdout, then the one error line", async () => {
    const tee = { ...DEV_MANIFEST.tee, allowedMeasurements: { any: true, reason: "x" } };
    const inference = { ...DEV_MANIFEST.inference, threads: 0 };
    writeFileSync(p("two-bad.json"), JSON.stringify({ ...DEV_MANIFEST, tee, inference }));
    const check = await cloister("manifest", "check", p("two-bad.json"));
    expect(check.code).toBe(2);
    expect(check.stdout.trimEnd().split("\n")).toEqual([
      `manifest ${p("two-bad.json")}: 2 violations`,
      '  manifest field tee.allowedMeasurements.reason: expected a reason of at least 8 characters, found "x"',
      "  manifest field inference.threads: expected a number >= 1, found 0",
    ]);
    expect(check.stderr.trimEnd().split("\n")).toEqual([
      expect.stringMatching(/^cloister: MANIFEST_FIELD_INVALID: .* \(and 1 more: inference\.threads\)$/),
    ]);
  });

  it("check and sign refuse smtAllowed false when a TDX platform is listed (a TD quote cannot show it), naming the field", async () => {
    const policyFlags = { ...DEV_MANIFEST.tee.policyFlags, smtAllowed: false };
    writeFileSync(p("tdx-no-smt.json"), JSON.stringify({ ...DEV_MANIFEST, tee: { ...DEV_MANIFEST.tee, policyFlags } }));
    await cloister("manifest", "keygen", "--out-private", p("s.jwk"), "--out-public", p("s.pub.jwk"));
    const [check, sign] = await Promise.all([
      cloister("manifest", "check", p("tdx-no-smt.json")),
      cloister("manifest", "sign", "--key", p("s.jwk"), p("tdx-no-smt.json"), p("tdx-no-smt.jws")),
    ]);
    expect(check.code).toBe(2);
    expect(check.stderr.trimEnd().split("\n")).toEqual([
      "cloister: MANIFEST_FIELD_INVALID: manifest field tee.policyFlags.smtAllowed: expected true (a TDX platform is listed: a TD quote does not attest the host's SMT), found false",
    ]);
    expect(sign.code).toBe(2);
    expect(sign.stderr).toMatch(/^cloister: MANIFEST_FIELD_INVALID: manifest field tee\.policyFlags\.smtAllowed: /);
    expect(statSync(p("tdx-no-smt.jws"), { throwIfNoEntry: false })).toBeUndefined();
  });

  it("check shows a field's value with its invisible characters escaped, in each violation's line and the error line", async () => {
    // U+202E (right-to-left override) would make a terminal show what follows it reversed; a
    // manifest checked may be anyone's. JSON.stringify escapes U+0000 to U+001F only.
    const service = { ...DEV_MANIFEST.service, name: "a\u202eexe.txt" };
    const inference = { ...DEV_MANIFEST.inference, threads: 0 };
    writeFileSync(p("invisible.json"), JSON.stringify({ ...DEV_MANIFEST, service, inference }));
    const check = await cloister("manifest", "check", p("invisible.json"));
    expect(check.code).toBe(2);
    expect(`${check.stdout}${check.stderr}`).not.toContain("\u202e");
    expect(check.stdout).toContain(
      'manifest field service.name: expected a lower-case slug (a-z, 0-9, -; at most 63), found "a\\u202eexe.txt"',
    );
    expect(check.stderr).toContain('found "a\\u202eexe.txt" (and 1 more: inference.threads)');
  });

  it("keygen refuses one path for both keys, even with --force", async () => {
    const same = await cloister(
      "manifest",
      "keygen",
      "--out-private",
      p("same.jwk"),
      "--out-public",
      p("same.jwk"),
      "--force",
    );
    expect(same.code).toBe(2);
    expect(same.stderr).toMatch(/^cloister: MANIFEST_FILE: --out-private and --out-public: expected two files/);
    expect(statSync(p("same.jwk"), { throwIfNoEntry: false })).toBeUndefined();
  });

  it("check and sign refuse a pattern rule the enclave would refuse at boot, naming the rule's field", async () => {
    const rules = [
      ...DEV_MANIFEST.requestPolicy.rules,
      { id: "lookahead", kind: "pattern", action: "block", pattern: "(?=secret)s", caseInsensitive: false },
    ];
    writeFileSync(
      p("lookahead.json"),
      JSON.stringify({ ...DEV_MANIFEST, requestPolicy: { ...DEV_MANIFEST.requestPolicy, rules } }),
    );
    await cloister("manifest", "keygen", "--out-private", p("r.jwk"), "--out-public", p("r.pub.jwk"));
    const [check, sign] = await Promise.all([
      cloister("manifest", "check", p("lookahead.json"), "--json"),
      cloister("manifest", "sign", "--key", p("r.jwk"), p("lookahead.json"), p("lookahead.jws")),
    ]);
    expect(check.code).toBe(2);
    expect(JSON.parse(check.stdout)).toMatchObject({
      valid: false,
      code: "MANIFEST_FIELD_INVALID",
      issues: [{ path: `requestPolicy.rules.${rules.length - 1}.pattern`, kind: "invalid" }],
    });
    expect(check.stdout).toContain('rule \\"lookahead\\" pattern: expected an RE2 regular expression');
    expect(sign.code).toBe(2);
    expect(sign.stderr).toMatch(/^cloister: MANIFEST_FIELD_INVALID: /);
    expect(statSync(p("lookahead.jws"), { throwIfNoEntry: false })).toBeUndefined();
  });

  it("sign refuses an existing <out> (unchanged, before signing) unless --force, which replaces it whole", async () => {
    await cloister("manifest", "keygen", "--out-private", p("s.jwk"), "--out-public", p("s.pub.jwk"));
    const dev = join(ROOT, "manifests/examples/dev.json");
    writeFileSync(p("pinned.jws"), "the deployed manifest");
    const refused = await cloister("manifest", "sign", "--key", p("s.jwk"), dev, p("pinned.jws"));
    expect(refused.code).toBe(2);
    expect(refused.stderr.trim()).toMatch(
      /^cloister: MANIFEST_FILE: output .*pinned\.jws: already exists \(use --force to overwrite\)$/,
    );
    expect(readFileSync(p("pinned.jws"), "utf8")).toBe("the deployed manifest");

    const forced = await cloister("manifest", "sign", "--key", p("s.jwk"), dev, p("pinned.jws"), "--force");
    expect(forced.code).toBe(0);
    const verify = await cloister("manifest", "verify", "--key", p("s.pub.jwk"), p("pinned.jws"));
    expect(verify.code).toBe(0);
    // No temporary file left beside it.
    expect(readdirSync(dir).filter((name) => name.includes("pinned"))).toEqual(["pinned.jws"]);
  });
});

describe("cloister manifest: an output that cannot be looked up or written", () => {
  const failure = (options: Parameters<typeof keygenCommand>[0]) =>
    keygenCommand(options).then(
      () => expect.unreachable("keygen wrote its outputs"),
      (error: unknown) => error as Error & { code?: string; cause?: unknown },
    );

  it("a failed lookup is said as one (not as a write), with the errno and what to do, the error its cause", async () => {
    // The lookup (lstat) fails: a part of the path is a file (as root, EACCES cannot be made).
    writeFileSync(p("a-file"), "");
    const under = join(p("a-file"), "key.jwk");
    const error = await failure({ outPrivate: under, outPublic: p("lookup.pub.jwk"), alg: "EdDSA" });
    expect([error.code, error.message]).toEqual([
      "MANIFEST_FILE",
      `--out-private ${under}: could not be looked up (ENOTDIR: a part of the path is a file, not a directory; check the path)`,
    ]);
    expect(error.cause).toMatchObject({ code: "ENOTDIR" });
  });

  it("a failed write names the errno and what to do, the error its cause", async () => {
    // A name the lookup takes (240 bytes) whose temporary name beside it (18 bytes more) is too long.
    const out = mkdtempSync(join(dir, "long-"));
    const name = join(out, "k".repeat(240));
    const error = await failure({ outPrivate: name, outPublic: p("write.pub.jwk"), alg: "EdDSA", force: true });
    expect([error.code, error.message]).toEqual([
      "MANIFEST_FILE",
      `--out-private ${name}: could not be written (ENAMETOOLONG)`,
    ]);
    expect(error.cause).toMatchObject({ code: "ENAMETOOLONG" });
    expect(readdirSync(out)).toEqual([]);
  });

  it("a directory at either output is refused before any key is written, even with --force", async () => {
    // Before, --force left it to the write: the private key was written, then the public one failed.
    const directory = mkdtempSync(join(dir, "out-"));
    const privatePath = p("before-dir.private.jwk");
    const error = await failure({ outPrivate: privatePath, outPublic: directory, alg: "EdDSA", force: true });
    expect([error.code, error.message]).toEqual([
      "MANIFEST_FILE",
      `--out-public ${directory}: expected a regular file, found a directory`,
    ]);
    expect(existsSync(privatePath)).toBe(false);
    expect(readdirSync(directory)).toEqual([]);
  });

  it("a path holding a line feed or an ESC is quoted in the message, as the client's outputs quote it", async () => {
    // Written raw, "\n" would end the message's line and "\x1b[2J" clear the terminal of whoever reads it.
    const odd = "odd\nname\x1b[2J";
    const directory = p(`${odd}.dir`);
    mkdirSync(directory);
    const refused = await failure({
      outPrivate: p("odd.private.jwk"),
      outPublic: directory,
      alg: "EdDSA",
      force: true,
    });
    expect([refused.code, refused.message]).toEqual([
      "MANIFEST_FILE",
      `--out-public $'${dir}/odd\\nname\\033[2J.dir': expected a regular file, found a directory`,
    ]);
    const existing = p(`${odd}.private.jwk`);
    writeFileSync(existing, "");
    const exists = await failure({ outPrivate: existing, outPublic: p("odd.public.jwk"), alg: "EdDSA" });
    expect([exists.code, exists.message]).toEqual([
      "MANIFEST_FILE",
      `--out-private $'${dir}/odd\\nname\\033[2J.private.jwk': already exists (use --force to overwrite)`,
    ]);
    const missing = await cloister("manifest", "check", p(`${odd}.json`));
    expect(missing.stderr).toBe(
      `cloister: MANIFEST_FILE: manifest $'${dir}/odd\\nname\\033[2J.json': could not be read (ENOENT: no such file; check the path)\n`,
    );
    writeFileSync(p(`${odd}.bad.json`), "{ not json");
    const malformed = await cloister("manifest", "check", p(`${odd}.bad.json`));
    expect(malformed.stderr).toContain(`: manifest $'${dir}/odd\\nname\\033[2J.bad.json': `);
  });

  it("keygen's one path for both keys and check's lines on stdout quote such a path too", async () => {
    const odd = p("odd\nname\x1b[2J");
    const quoted = `$'${dir}/odd\\nname\\033[2J`;
    const same = await failure({ outPrivate: `${odd}.jwk`, outPublic: `${odd}.jwk`, alg: "EdDSA", force: true });
    expect([same.code, same.message]).toEqual([
      "MANIFEST_FILE",
      `--out-private and --out-public: expected two files, found the same path ${quoted}.jwk' (the public key would replace the private one)`,
    ]);
    writeFileSync(`${odd}.valid.json`, JSON.stringify(DEV_MANIFEST));
    const tee = { ...DEV_MANIFEST.tee, allowedMeasurements: { any: true, reason: "x" } };
    const inference = { ...DEV_MANIFEST.inference, threads: 0 };
    writeFileSync(`${odd}.two-bad.json`, JSON.stringify({ ...DEV_MANIFEST, tee, inference }));
    const [valid, twoBad] = await Promise.all([
      cloister("manifest", "check", `${odd}.valid.json`),
      cloister("manifest", "check", `${odd}.two-bad.json`),
    ]);
    expect([valid.code, valid.stdout]).toEqual([
      0,
      `manifest ${quoted}.valid.json': schema valid (${DEV_MANIFEST.service.name}@${DEV_MANIFEST.service.version})\n`,
    ]);
    expect(twoBad.code).toBe(2);
    expect(twoBad.stdout.split("\n")[0]).toBe(`manifest ${quoted}.two-bad.json': 2 violations`);
  });

  it("keygen's key lines and sign's signed line on stdout quote such a path too", async () => {
    const odd = p("odd\nname\x1b[2J");
    const quoted = `$'${dir}/odd\\nname\\033[2J`;
    const keygen = await cloister("manifest", "keygen", "--out-private", `${odd}.k`, "--out-public", `${odd}.p`);
    expect(keygen.code).toBe(0);
    expect(keygen.stdout.split("\n").slice(1)).toEqual([
      `  private key: ${quoted}.k' (mode 0600; keep it offline)`,
      `  public key:  ${quoted}.p'`,
      "",
    ]);
    const examples = join(ROOT, "manifests/examples/dev.json");
    const signed = await cloister("manifest", "sign", "--key", `${odd}.k`, examples, `${odd}.jws`);
    expect([signed.code, signed.stdout.split("\n")[0]]).toEqual([0, `signed ${quoted}.jws'`]);
  });
});
