/**
 * Which errors exit 2 (bad input: fix the option or file and run again) and which exit 1 (a
 * failure), run in process through the command line's main(): a model file that cannot be opened,
 * a sealed output that exists, a small-order --key, an option that cannot do what it says, an
 * enclave option for another --tee or against the manifest.
 */
import { existsSync } from "node:fs";
import { chmod, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { DEV_MANIFEST, devManifest, type ManifestOverrides } from "../../manifests/dev.ts";
import { generateManifestSigningKey, signManifest } from "../../manifests/sign.ts";
import { generateModelKey, modelKeyToJwk } from "../../models/sealed.ts";
import { writeTinyModel } from "../../models/tiny.ts";
import { inProcessCli } from "../helpers/cli-in-process.ts";
import { testDirectory } from "../helpers/test-directory.ts";

/** An Ed25519 public key of small order (the neutral point): signatures under it can be forged. */
const SMALL_ORDER_KEY = `01${"00".repeat(31)}`;

const dir = await testDirectory("cloister-cli-bad-input-");

beforeAll(async () => {});

const cli = inProcessCli();
const run = async (args: string[]) => {
  const { code, stderr } = await cli(args);
  return { code, stderr };
};

describe("bad input exits 2, a failure exits 1", () => {
  it("model inspect / model run: a model file that is missing or a directory exits 2 (MODEL_IO)", async () => {
    const missing = join(dir, "missing.gguf");
    expect(await run(["model", "inspect", missing])).toEqual({
      code: 2,
      stderr: `cloister: MODEL_IO: model file ${missing}: cannot open (ENOENT)\n`,
    });
    // A directory is refused by fstat on the handle opened (non-blocking, as a FIFO is), before any read.
    expect(await run(["model", "inspect", dir])).toEqual({
      code: 2,
      stderr: `cloister: MODEL_IO: model file ${dir}: expected a regular file, found a directory\n`,
    });
    // Unpinned, the run opens it to take its digest (as inspect does): cannot open.
    expect(await run(["model", "run", "--model", missing, "--prompt", "hi"])).toEqual({
      code: 2,
      stderr: `cloister: MODEL_IO: model file ${missing}: cannot open (ENOENT)\n`,
    });
    // With --sha256 the engine opens it (MODEL_NOT_FOUND, as the enclave says): bad input all the same.
    expect(await run(["model", "run", "--model", missing, "--sha256", "ab".repeat(32), "--prompt", "hi"])).toEqual({
      code: 2,
      stderr: `cloister: MODEL_NOT_FOUND: --model file ${missing}: not found; check the path, or put the model file there\n`,
    });
  });

  it("model inspect: a file that is there but not a model is a failure, exit 1", async () => {
    const empty = join(dir, "empty.gguf");
    await writeFile(empty, "");
    expect(await run(["model", "inspect", empty])).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/^cloister: GGUF_TRUNCATED: /),
    });
  });

  it("model seal: an OUT that exists exits 2 (MODEL_OUTPUT_EXISTS), as --out files of other commands do", async () => {
    const keyPath = join(dir, "model.jwk");
    await writeFile(keyPath, JSON.stringify(modelKeyToJwk(generateModelKey("k1"))), { mode: 0o600 });
    await chmod(keyPath, 0o600);
    const input = join(dir, "tiny.gguf");
    await writeTinyModel(input);
    const out = join(dir, "tiny.sealed");
    await writeFile(out, "already here");
    expect(await run(["model", "seal", "--key", keyPath, input, out])).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/^cloister: MODEL_OUTPUT_EXISTS: .*--force replaces it\)\n$/),
    });
  });

  it("audit verify / receipt verify: a small-order --key exits 2, as a malformed one does, in the same words", async () => {
    const log = join(dir, "audit.jsonl");
    await writeFile(log, "");
    for (const [key, found] of [
      ["zz", "expected 64 hex characters, found 2 characters"],
      [SMALL_ORDER_KEY, "expected a point of large order, found a small-order point"],
    ]) {
      for (const command of [
        ["audit", "verify", "--log", log],
        ["receipt", "verify", "--receipt", log],
      ]) {
        expect(await run([...command, "--key", key as string]), `${command[0]} ${key}`).toEqual({
          code: 2,
          stderr: `cloister: USAGE: --key: enclave Ed25519 public key: ${found}\n`,
        });
      }
    }
  });

  it("attest: --force without --document-out or --evidence-out, which it would replace, exits 2", async () => {
    expect(await run(["attest", "--url", "http://127.0.0.1:9", "--policy", join(dir, "none.json"), "--force"])).toEqual(
      {
        code: 2,
        stderr:
          "cloister: USAGE: --force: replaces the file of --document-out or --evidence-out, which was not given (run with --help for usage)\n",
      },
    );
  });

  it("audit checkpoint: --force without --out, which it would replace, exits 2 (as attest's and policy init's)", async () => {
    const checkpoint = ["audit", "checkpoint", "--url", "http://127.0.0.1:9", "--policy", join(dir, "none.json")];
    expect(await run([...checkpoint, "--force"])).toEqual({
      code: 2,
      stderr: "cloister: USAGE: --force: replaces the file of --out, which was not given (run with --help for usage)\n",
    });
  });

  it("host: --max-in-flight-per-key above --max-in-flight exits 2 naming both", async () => {
    const host = ["host", "--enclave-url", "http://127.0.0.1:9", "--api-keys", join(dir, "none.json")];
    host.push("--audit-dir", join(dir, "audit"), "--port", "0");
    expect(await run([...host, "--max-in-flight", "64", "--max-in-flight-per-key", "65"])).toEqual({
      code: 2,
      stderr:
        "cloister: USAGE: --max-in-flight-per-key 65: expected at most --max-in-flight (64), the requests the host forwards at once in all (run with --help for usage)\n",
    });
    // Equal is allowed: what stops this one is the missing --api-keys file, read after the options.
    const equal = await run([...host, "--max-in-flight", "64", "--max-in-flight-per-key", "64"]);
    expect(equal.stderr).toMatch(/^cloister: USAGE: --api-keys \S*none\.json: cannot read \(ENOENT/);
  });

  it("host: an --enclave-url that is not http:, has a space, or is listed twice, or a --cors-origin that is not an origin, exits 2 before anything starts", async () => {
    const options = ["--api-keys", join(dir, "none.json"), "--audit-dir", join(dir, "audit"), "--port", "0"];
    const url = "http://127.0.0.1:9";
    for (const [args, message] of [
      [
        ["--enclave-url", "https://127.0.0.1:9"],
        '--enclave-url: expected an http: URL (the enclave\'s internal server), found "https://127.0.0.1:9"',
      ],
      [
        // Its routes are appended to the text as written: "http://127.0.0.1:9 /sealed" does not parse.
        ["--enclave-url", `${url} `],
        `--enclave-url: expected no space or control character (the URL parser drops them, the host's requests would not), found "${url} "`,
      ],
      [
        ["--enclave-url", url, "--enclave-url", `${url}/`],
        `--enclave-url: expected each enclave listed once, found one enclave at positions 0 and 1 (from 0): "${url}" and "${url}/", the same compared as URLs (case, default port, dot segments and trailing slashes aside)`,
      ],
      [
        ["--enclave-url", url, "--cors-origin", "https://app.example/"],
        '--cors-origin: cors origin: expected the bare origin "https://app.example" (no path, query or trailing slash), found "https://app.example/"',
      ],
    ] as const) {
      expect(await run(["host", ...args, ...options]), args.join(" ")).toEqual({
        code: 2,
        stderr: `cloister: USAGE: ${message} (run with --help for usage)\n`,
      });
    }
  });

  it("up: a --cors-origin that is not an origin exits 2 before anything is made, worded as host's", async () => {
    const up = join(dir, "up-cors");
    expect(await run(["up", "--dir", up, "--cors-origin", "https://app.example/"])).toEqual({
      code: 2,
      stderr:
        'cloister: USAGE: --cors-origin: cors origin: expected the bare origin "https://app.example" (no path, query or trailing slash), found "https://app.example/" (run with --help for usage)\n',
    });
    expect(existsSync(up)).toBe(false);
  });

  describe("enclave: an option of another --tee exits 2", () => {
    let common: string[];
    beforeAll(async () => {
      const operator = await generateManifestSigningKey("EdDSA");
      const manifestPath = join(dir, "manifest.jws");
      await writeFile(manifestPath, await signManifest(devManifest(), operator.privateJwk));
      const operatorKeyPath = join(dir, "operator.public.jwk");
      await writeFile(operatorKeyPath, JSON.stringify(operator.publicJwk));
      await mkdir(join(dir, "collateral"), { recursive: true });
      // The model is never read: the options are refused first.
      common = ["enclave", "--manifest", manifestPath, "--operator-key", operatorKeyPath];
      common.push("--model", join(dir, "missing.gguf"), "--tee", "sim-snp", "--port", "0");
    });

    it("--tdx-collateral with --tee sim-snp: TDX_COLLATERAL_UNUSED", async () => {
      expect(await run([...common, "--tdx-collateral", join(dir, "collateral")])).toMatchObject({
        code: 2,
        stderr: expect.stringMatching(
          /^cloister: TDX_COLLATERAL_UNUSED: --tdx-collateral: expected --tee tdx, found --tee sim-snp/,
        ),
      });
    });

    it("--kds-url or --snp-product with --tee sim-snp: SNP_KDS_OPTION_UNUSED", async () => {
      expect(await run([...common, "--kds-url", "https://kds.example"])).toMatchObject({
        code: 2,
        stderr: expect.stringMatching(
          /^cloister: SNP_KDS_OPTION_UNUSED: --kds-url: expected --tee snp, found --tee sim-snp/,
        ),
      });
      expect(await run([...common, "--snp-product", "Milan"])).toMatchObject({
        code: 2,
        stderr: expect.stringMatching(/^cloister: SNP_KDS_OPTION_UNUSED: --snp-product: expected --tee snp/),
      });
    });

    it("a malformed --kds-url with --tee snp: SNP_KDS_URL_INVALID, before the (missing) model is looked at", async () => {
      const operator = await generateManifestSigningKey("EdDSA");
      const manifestPath = join(dir, "manifest-snp.jws");
      await writeFile(
        manifestPath,
        await signManifest(
          devManifest({
            tee: { platforms: ["snp"], allowedMeasurements: ["ab".repeat(48)], minimumTcb: { tdx: null } },
          } as ManifestOverrides),
          operator.privateJwk,
        ),
      );
      const operatorKeyPath = join(dir, "operator-snp.public.jwk");
      await writeFile(operatorKeyPath, JSON.stringify(operator.publicJwk));
      const snp = ["enclave", "--manifest", manifestPath, "--operator-key", operatorKeyPath];
      snp.push("--model", join(dir, "missing.gguf"), "--tee", "snp", "--port", "0");
      expect(await run([...snp, "--kds-url", "ftp://kds.example"])).toMatchObject({
        code: 2,
        stderr: expect.stringMatching(
          /^cloister: SNP_KDS_URL_INVALID: --kds-url: expected an http\(s\) URL without query or fragment/,
        ),
      });
    });
  });

  it("enclave and policy init: an --operator-key file that is not one public JWK exits 2 (MANIFEST_KEY_INVALID), naming the option and the file", async () => {
    const operator = await generateManifestSigningKey("EdDSA");
    const manifestPath = join(dir, "operator-key-manifest.jws");
    await writeFile(manifestPath, await signManifest(devManifest(), operator.privateJwk));
    const cases: [string, string, string][] = [
      ["null", "null", "found null"],
      ["array", JSON.stringify([operator.publicJwk]), "found an array"],
      ["jwks", JSON.stringify({ keys: [operator.publicJwk] }), 'found a JWK Set ({"keys": […]})'],
      ["private", JSON.stringify(operator.privateJwk), "found a private one"],
      [
        "rsa",
        JSON.stringify({ kty: "RSA", n: "AQAB", e: "AQAB" }),
        'expected an Ed25519 (OKP) or P-256 (EC) JWK, found kty "RSA", no crv',
      ],
      [
        "x25519",
        JSON.stringify({ kty: "OKP", crv: "X25519", x: operator.publicJwk.x }),
        'expected an Ed25519 (OKP) or P-256 (EC) JWK, found kty "OKP", crv "X25519"',
      ],
      // RFC 7517 §4.2-4.4: a key marked for encryption, other operations or another alg never verifies.
      [
        "use",
        JSON.stringify({ ...operator.publicJwk, use: "enc" }),
        'use: expected "sig" (a key for signatures), found "enc"',
      ],
      [
        "key_ops",
        JSON.stringify({ ...operator.publicJwk, key_ops: ["sign"] }),
        'key_ops: expected an array including "verify", found ["sign"]',
      ],
      [
        "alg",
        JSON.stringify({ ...operator.publicJwk, alg: "ES256" }),
        'alg: expected "EdDSA" (an Ed25519 key signs only EdDSA), found "ES256"',
      ],
    ];
    for (const [name, text, found] of cases) {
      const keyPath = join(dir, `operator-${name}.jwk`);
      await writeFile(keyPath, text);
      const enclave = await run([
        "enclave",
        "--manifest",
        manifestPath,
        "--operator-key",
        keyPath,
        "--model",
        join(dir, "missing.gguf"),
        "--tee",
        "sim-snp",
        "--port",
        "0",
      ]);
      expect(enclave.code, name).toBe(2);
      expect(enclave.stderr, name).toMatch(/^cloister: MANIFEST_KEY_INVALID: --operator-key \//);
      expect(enclave.stderr, name).toMatch(new RegExp(`--operator-key ${keyPath}: (use: |key_ops: |alg: )?expected`));
      expect(enclave.stderr, name).toContain(found);
      const policy = await run([
        "policy",
        "init",
        "--url",
        "http://127.0.0.1:9",
        "--operator-key",
        keyPath,
        "--out",
        join(dir, `policy-${name}.json`),
      ]);
      expect(policy.code, name).toBe(2);
      expect(policy.stderr, name).toMatch(
        new RegExp(`cloister: MANIFEST_KEY_INVALID: --operator-key ${keyPath}: (use: |key_ops: |alg: )?expected`),
      );
      expect(policy.stderr, name).toContain(found);
    }
  });

  describe("enclave: a --kbs-url or --model that does not fit the manifest is refused before any evidence is asked for", () => {
    let operatorKeyPath: string;
    let operator: Awaited<ReturnType<typeof generateManifestSigningKey>>;
    let manifests = 0;
    beforeAll(async () => {
      operator = await generateManifestSigningKey("EdDSA");
      operatorKeyPath = join(dir, "kbs-operator.public.jwk");
      await writeFile(operatorKeyPath, JSON.stringify(operator.publicJwk));
    });
    /**
     * `cloister enclave` on a manifest for --tee snp, which this machine cannot give evidence for
     * (TSM_UNAVAILABLE): any other answer came before evidence, and before the key broker.
     */
    const enclave = async (model: NonNullable<ManifestOverrides["model"]>, extra: string[], modelPath?: string) => {
      const manifestPath = join(dir, `snp-${++manifests}.jws`);
      const tee = { platforms: ["snp" as const], allowedMeasurements: ["aa".repeat(48)], minimumTcb: { tdx: null } };
      const manifest = devManifest({ model, tee });
      await writeFile(manifestPath, await signManifest(manifest, operator.privateJwk));
      const args = ["enclave", "--manifest", manifestPath, "--operator-key", operatorKeyPath];
      args.push("--model", modelPath ?? join(dir, "missing.gguf"), "--tee", "snp", "--port", "0", ...extra);
      return run(args);
    };
    const plain = { sealedAtRest: false, keyId: null };
    const sealed = { sealedAtRest: true, keyId: "model-key-1" };
    // Nothing listens on port 9: a boot that asked the broker would fail with BOOT_KBS_UNREACHABLE.
    const kbs = ["--kbs-url", "http://127.0.0.1:9"];

    it("--operator-key repeated: every key given is trusted, in either order (a manifest signed by the second boots past its signature)", async () => {
      const other = await generateManifestSigningKey("EdDSA");
      const otherKeyPath = join(dir, "kbs-operator-other.public.jwk");
      await writeFile(otherKeyPath, JSON.stringify(other.publicJwk));
      const manifestPath = join(dir, "snp-second-key.jws");
      const tee = { platforms: ["snp" as const], allowedMeasurements: ["aa".repeat(48)], minimumTcb: { tdx: null } };
      await writeFile(manifestPath, await signManifest(devManifest({ model: plain, tee }), other.privateJwk));
      const withKeys = (...keys: string[]) => {
        const args = ["enclave", "--manifest", manifestPath, ...keys.flatMap((key) => ["--operator-key", key])];
        args.push("--model", join(dir, "missing.gguf"), "--tee", "snp", "--port", "0", ...kbs);
        return run(args);
      };
      // Past the manifest's signature, the boot stops at the next check (BOOT_KBS_UNUSED): the key
      // given second, and then first, was among those the manifest was verified under.
      const past = {
        code: 2,
        stderr:
          "cloister: BOOT_KBS_UNUSED: boot: --kbs-url: expected none, as the manifest's model is not sealed at rest (model.sealedAtRest false), found a key broker URL\n",
      };
      expect(await withKeys(operatorKeyPath, otherKeyPath)).toEqual(past);
      expect(await withKeys(otherKeyPath, operatorKeyPath)).toEqual(past);
      // Under the first key alone the same manifest is refused: the check above can fail.
      expect(await withKeys(operatorKeyPath)).toEqual({
        code: 1,
        stderr: `cloister: BOOT_MANIFEST_INVALID: boot: manifest refused: manifest signature: expected a valid signature by a trusted key (${operator.thumbprint}), found none that verifies; the manifest's header names signer kid ${other.thumbprint} (unverified), not a trusted key\n`,
      });
    });

    it("--kbs-url for a model that is not sealed at rest: BOOT_KBS_UNUSED, exit 2", async () => {
      expect(await enclave(plain, kbs)).toEqual({
        code: 2,
        stderr:
          "cloister: BOOT_KBS_UNUSED: boot: --kbs-url: expected none, as the manifest's model is not sealed at rest (model.sealedAtRest false), found a key broker URL\n",
      });
    });

    it("no --kbs-url for a model sealed at rest: BOOT_KBS_REQUIRED, exit 2", async () => {
      expect(await enclave(sealed, [])).toEqual({
        code: 2,
        stderr:
          "cloister: BOOT_KBS_REQUIRED: boot: --kbs-url: expected the key broker's URL, as the manifest's model is sealed at rest (model.sealedAtRest true, model.keyId \"model-key-1\"), found none\n",
      });
    });

    it("a --model file that is missing or a directory, plain or sealed: MODEL_NOT_FOUND, exit 2", async () => {
      const missing = join(dir, "missing.gguf");
      expect(await enclave(plain, [])).toEqual({
        code: 2,
        stderr: `cloister: MODEL_NOT_FOUND: --model file ${missing}: not found; check the path, or put the model file there\n`,
      });
      expect(await enclave(sealed, kbs)).toEqual({
        code: 2,
        stderr: `cloister: MODEL_NOT_FOUND: --model file ${missing}: not found; check the path, or put the model file there\n`,
      });
      expect(await enclave(sealed, kbs, dir)).toEqual({
        code: 2,
        stderr: `cloister: MODEL_NOT_FOUND: --model file ${dir}: expected a regular file, found a directory; give the model file's path\n`,
      });
    });

    it("a --model file of another size than the manifest's: MODEL_SIZE_MISMATCH, a failure (exit 1)", async () => {
      const short = join(dir, "short.gguf");
      await writeFile(short, "GGUF");
      for (const [model, extra] of [
        [plain, []],
        [sealed, kbs],
      ] as const) {
        expect(await enclave(model, [...extra], short)).toEqual({
          code: 1,
          stderr: `cloister: MODEL_SIZE_MISMATCH: model file ${short}: expected ${DEV_MANIFEST.model.sizeBytes} bytes (the manifest's model.sizeBytes), found 4; not loaded\n`,
        });
      }
    });
  });
});
