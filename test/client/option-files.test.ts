/**
 * The small files options name (--policy, --operator-key, --api-key-file and cloister up's default key
 * file, the host's --api-keys, the enclave's --manifest, chat's --prompt-file, up's own key files,
 * proxy's --token-file, the key broker's --config and key files, verify-evidence's inputs) are read
 * to a bound and, when text, as strict UTF-8 (client/cli/bounded-file.ts): a larger file, or a
 * device that never ends, is USAGE (the broker's: KBS_CONFIG_INVALID) naming the option, the file
 * and the bound, never held in memory whole; a byte that is not UTF-8 is refused naming the byte,
 * never decoded loosely into U+FFFD. A file that cannot be read keeps each command's own message.
 */
import { chmod, mkdir, mkdtemp, readFile, truncate, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { verifyEvidence as verifyAzure } from "../../attestation/azure/cli-verify.ts";
import { NotFileOrPipeError } from "../../attestation/bounded-read.ts";
import { loadBrokerConfig } from "../../attestation/kbs/config.ts";
import { BrokerConfigError } from "../../attestation/kbs/key-file.ts";
import { verifyEvidence as verifySnp } from "../../attestation/snp/cli-verify.ts";
import { verifyEvidence as verifyTdx } from "../../attestation/tdx/cli-verify.ts";
import { decodeUtf8 } from "../../attestation/utf8.ts";
import { readPolicyOption } from "../../attestation/verify-evidence-cli.ts";
import { readOptionFile } from "../../client/cli/bounded-file.ts";
import { readApiKeyOfEarlierRun, readKeyFile } from "../../client/cli/deploy.ts";
import { UsageError } from "../../client/cli/output.ts";
import { readApiKey, readPolicyFile, readPrompt } from "../../client/cli/run-client.ts";
import { localToken } from "../../client/cli/run-proxy.ts";
import { loadApiKeys } from "../../host/run.ts";
import { readOperatorKeyFile } from "../../manifests/cli-impl.ts";
import { runCloister } from "../helpers/cli.ts";
import { fifoWriter } from "../helpers/pipes.ts";
import { testDirectory } from "../helpers/test-directory.ts";
import { devPolicy } from "./helpers.ts";

const KiB = 1024;
const MiB = 1024 * KiB;

const dir = await testDirectory("cloister-option-files-");

/** A sparse file one byte past `bound`: all zero bytes, none of them written out. */
async function past(name: string, bound: number): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, "");
  await truncate(path, bound + 1);
  return path;
}

/** A file whose 5th byte is 0xff, which no UTF-8 text holds (decoded loosely: U+FFFD). */
async function notUtf8(name: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, Buffer.concat([Buffer.from('{"ab'), Buffer.of(0xff), Buffer.from('"}')]));
  return path;
}

const refusal = (promise: Promise<unknown>): Promise<unknown> =>
  promise.then(
    () => new Error("expected a refusal"),
    (error: unknown) => error,
  );

const utf8Refusal = (subject: string) =>
  new UsageError(`${subject}: expected UTF-8 text, found a byte that is not UTF-8 (byte 5 of the file)`);

interface Case {
  /** What the refusal names: the option, or the file's role. */
  readonly option: string;
  readonly bound: number;
  readonly expected: string;
  readonly read: (file: string) => Promise<unknown>;
  /** The error a refusal is (default: a UsageError). */
  readonly refusal?: (message: string) => Error;
  /** Bytes, not text: no UTF-8 to check. */
  readonly binary?: true;
  /** What a missing file's refusal says; null: a missing file is no error (it is made). */
  readonly missing?: ((file: string) => string) | null;
  /** A reader that trusts only a private file: the file is made 0600 first. */
  readonly private?: true;
  /**
   * Read by the key broker's private-file reader (attestation/kbs/key-file.ts), which takes a
   * regular file only; its refusals name the file as every other reader's do (`--config /path: …`).
   */
  readonly checkedFile?: true;
}

/** How a refusal of `c` names `file`: `--option /path` (fileMessage), whichever reader read it. */
const named = (c: Case, file: string): string => `${c.option} ${file}`;

/** A broker configuration naming `keyFile` (read before its inline policy is looked at). */
async function brokerConfigFor(keyFile: string): Promise<string> {
  const path = join(dir, `kbs-config-${basename(keyFile)}.json`);
  await writeFile(path, JSON.stringify({ version: 1, keys: [{ keyFile, policy: {} }] }));
  return path;
}

const cases: readonly Case[] = [
  {
    option: "--policy",
    bound: MiB,
    expected: "a client policy, a few KiB: 1 MiB holds some 10,000 allow-list entries",
    read: (file) => readPolicyFile(file),
  },
  {
    option: "--operator-key",
    bound: 64 * KiB,
    expected: "one Ed25519 or P-256 JWK, a few hundred bytes",
    read: (file) => readOperatorKeyFile(file),
  },
  {
    option: "--api-keys",
    bound: 16 * MiB,
    expected: "the host's API keys, some 40,000 at their largest",
    read: (file) => loadApiKeys(file),
  },
  {
    option: "--api-key-file",
    bound: 16 * KiB,
    expected: "one API key, sent in an HTTP header: Node's servers take 16 KiB of headers",
    read: (file) => readApiKey(file, "http://127.0.0.1:9"),
    private: true,
    checkedFile: true,
  },
  {
    option: "--prompt-file",
    bound: 3_000_000,
    expected: "a prompt of at most 1000000 characters (UTF-16 code units), 3 bytes of UTF-8 each at most",
    read: (file) => readPrompt(undefined, file),
  },
  {
    option: "operator key",
    bound: 64 * KiB,
    expected: "one JWK cloister up wrote, a few hundred bytes",
    read: (file) => readKeyFile(file, "operator key"),
    private: true,
    checkedFile: true,
  },
  {
    option: "cloister up: API key file",
    bound: 16 * KiB,
    expected: "one API key, sent in an HTTP header: Node's servers take 16 KiB of headers",
    read: (file) => readApiKeyOfEarlierRun(file),
    private: true,
    checkedFile: true,
  },
  {
    option: "--token-file",
    bound: 1024,
    expected: "one token of at most 256 printable characters",
    read: (file) => localToken(file),
    private: true,
    checkedFile: true,
    missing: null,
  },
  {
    option: "--config",
    bound: MiB,
    expected: "a broker configuration or a release policy, a few KiB",
    read: (file) => loadBrokerConfig(file),
    refusal: (message) => new BrokerConfigError(message),
    checkedFile: true,
  },
  {
    option: "keys.0.keyFile",
    bound: 64 * KiB,
    expected: "one model key JWK, a few hundred bytes",
    read: async (file) => loadBrokerConfig(await brokerConfigFor(file)),
    refusal: (message) => new BrokerConfigError(message),
    private: true,
    checkedFile: true,
  },
  // cloister verify-evidence: each input file to the bound its option has (INPUT_FILE_BOUNDS).
  {
    option: "--report",
    bound: 64 * KiB,
    expected: "an SNP report, 1184 bytes",
    read: (file) => verifySnp({ tee: "snp", report: file, cert: file }),
    binary: true,
  },
  {
    option: "--cert",
    bound: 16 * KiB,
    expected: "a VCEK, some 1.4 KB of DER or 2 KB of PEM",
    read: async (file) => verifySnp({ tee: "snp", report: await small("report.bin"), cert: file }),
    binary: true,
  },
  {
    option: "--quote",
    bound: 64 * KiB,
    expected: "a TD quote, some 5 KiB; configfs-tsm hands out 32 KiB at most",
    read: (file) => verifyTdx({ tee: "tdx", quote: file }),
    binary: true,
  },
  {
    option: "--evidence",
    bound: MiB,
    expected: "Azure evidence, JSON that is read to 1 MiB",
    read: (file) => verifyAzure({ tee: "azure-snp", evidence: file }),
  },
  {
    option: "--token",
    bound: MiB,
    expected: "an MAA token, some 10 KiB",
    read: (file) => verifyAzure({ tee: "maa", token: file, jwks: file }),
  },
  {
    option: "--jwks",
    bound: MiB,
    expected: "MAA's signing key set, some 10 KiB",
    read: async (file) => verifyAzure({ tee: "maa", token: await small("token.jwt"), jwks: file }),
  },
  {
    option: "--policy",
    bound: MiB,
    expected: "an attestation or client policy, a few KiB",
    read: (file) => readPolicyOption(file, "snp"),
  },
];

/** A small file that reads (its content is refused later, if at all: never reached here). */
async function small(name: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, "x");
  return path;
}

describe("option files are read to a bound and as strict UTF-8", () => {
  for (const [index, c] of cases.entries()) {
    const { option, bound, expected, read } = c;
    const refused = c.refusal ?? ((message: string) => new UsageError(message));
    it(`${option}: a file past ${bound} bytes${c.binary ? "" : ", and one that is not UTF-8"}`, async () => {
      const name = `${index}-${option.replace(/[^a-z0-9]+/gi, "-")}`;
      const huge = await past(`huge-${name}`, bound);
      if (c.private) await chmod(huge, 0o600);
      expect(await refusal(read(huge))).toEqual(
        refused(`${named(c, huge)}: expected at most ${bound} bytes (${expected}), found more`),
      );
      if (!c.binary) {
        const latin1 = await notUtf8(`latin1-${name}`);
        if (c.private) await chmod(latin1, 0o600);
        expect(await refusal(read(latin1))).toEqual(refused(utf8Refusal(named(c, latin1)).message));
      }
      // A file that cannot be read: the command's own message, as before.
      const missing = join(dir, `missing-${name}`);
      if (c.missing === null) return;
      expect(((await refusal(read(missing))) as Error).message).toContain(
        c.missing?.(missing) ?? `${named(c, missing)}: cannot read (ENOENT: no such file; check the path)`,
      );
    });
  }

  it("a path holding ': ' is named as one shell word (single-quoted), so where it ends and the reason starts is clear", async () => {
    for (const [index, c] of cases.entries()) {
      const refused = c.refusal ?? ((message: string) => new UsageError(message));
      const huge = await past(`huge: ${index}`, c.bound);
      if (c.private) await chmod(huge, 0o600);
      expect(await refusal(c.read(huge)), c.option).toEqual(
        refused(`${c.option} '${huge}': expected at most ${c.bound} bytes (${c.expected}), found more`),
      );
    }
  });

  it("a file that cannot be read is named as the option's other refusals name it (optionFileUnreadable)", async () => {
    // A path through a regular file: ENOTDIR, which no reader takes for a missing file (--token-file's is made).
    const under = join(await small("not-a-directory"), "x");
    for (const c of cases.filter((c) => c.missing === undefined || c.missing === null)) {
      expect(((await refusal(c.read(under))) as Error).message, c.option).toBe(
        `${named(c, under)}: cannot read (ENOTDIR: a part of the path is a file, not a directory; check the path)`,
      );
    }
  });

  it("cloister up's default key file (no --api-key-file, a loopback URL): to the same bound", async () => {
    const work = await mkdtemp(join(dir, "up-"));
    await mkdir(join(work, ".cloister"));
    const keyFile = join(work, ".cloister", "api-key");
    await writeFile(keyFile, "", { mode: 0o600 });
    await truncate(keyFile, 16 * KiB + 1);
    const policy = join(work, "policy.json");
    await writeFile(policy, JSON.stringify(await devPolicy()));
    // Spawned in that directory: the default key file is relative to the working directory.
    const run = await runCloister(["attest", "--url", "http://127.0.0.1:9", "--policy", policy], { cwd: work });
    expect(run.stderr).toContain(
      `the default key file .cloister/api-key: expected at most ${16 * KiB} bytes (one API key, sent in an HTTP header: Node's servers take 16 KiB of headers), found more`,
    );
  });

  it("cloister enclave --manifest: a signed manifest past 4 MiB, as cloister manifest verify reads one", async () => {
    const manifest = await past("huge-manifest.jws", 4 * MiB);
    // The model and the operator key are never read: the manifest is refused first.
    const args = ["enclave", "--manifest", manifest, "--operator-key", join(dir, "never-read.jwk")];
    args.push("--model", join(dir, "missing.gguf"), "--tee", "sim-snp", "--port", "0");
    const run = await runCloister(args);
    expect({ code: run.code, stderr: run.stderr }).toEqual({
      code: 2,
      stderr: `cloister: USAGE: --manifest ${manifest}: expected at most ${4 * MiB} bytes (a manifest travels whole in the attestation document, read to 4 MiB), found more\n`,
    });
  });
});

describe("option files are a regular file or a pipe: never a device, a socket or a directory", () => {
  // Through readBoundedFile (openFileOrPipe); not the secret files nor the key broker's files, which
  // take a regular file only (checked once open: their own refusals, test/client/api-key-source.test.ts).
  for (const [index, c] of cases.entries()) {
    if (c.private === true || c.checkedFile === true) continue;
    const refused = c.refusal ?? ((message: string) => new UsageError(message));
    it(`${c.option}: /dev/zero, /dev/null and a directory are refused, naming what each is`, async () => {
      const directory = join(dir, `directory-${index}`);
      await mkdir(directory);
      for (const [path, found] of [
        ["/dev/zero", "a character device"],
        ["/dev/null", "a character device"],
        [directory, "a directory"],
      ] as const) {
        expect(await refusal(c.read(path)), path).toEqual(
          refused(`${c.option} ${path}: expected a regular file or a pipe, found ${found}`),
        );
      }
    });
  }

  it("the refusal keeps what the path is as its cause (NotFileOrPipeError)", async () => {
    const directory = join(dir, "directory-cause");
    await mkdir(directory);
    const error = await refusal(readOptionFile(directory, "--policy", { bytes: 10, expected: "a policy" }));
    expect(error).toBeInstanceOf(UsageError);
    expect((error as UsageError).cause).toBeInstanceOf(NotFileOrPipeError);
    expect((error as UsageError).cause).toMatchObject({ found: "a directory" });
  });

  it("a pipe is read as a file is (a named pipe, `--policy <(command)`), and to the same bound", async () => {
    const policy = JSON.stringify(await devPolicy());
    const writers = [
      fifoWriter(join(dir, "policy.fifo"), policy),
      fifoWriter(join(dir, "prompt.fifo"), "a prompt through a pipe\n"),
      fifoWriter(join(dir, "endless.fifo"), "endless"),
    ];
    try {
      expect((await readPolicyFile(join(dir, "policy.fifo"))).json).toEqual(JSON.parse(policy));
      expect(await readPrompt(undefined, join(dir, "prompt.fifo"))).toBe("a prompt through a pipe\n");
      const endless = join(dir, "endless.fifo");
      expect(await refusal(readPrompt(undefined, endless))).toEqual(
        new UsageError(
          `--prompt-file ${endless}: expected at most 3000000 bytes (a prompt of at most 1000000 characters (UTF-16 code units), 3 bytes of UTF-8 each at most), found more`,
        ),
      );
    } finally {
      for (const writer of writers) writer.stop();
    }
  });
});

describe("verify-evidence's JSON inputs: a leading byte order mark, as before they were read to a bound", () => {
  // Before the bounded reads, --evidence and --policy were decoded by TextDecoder, which drops a
  // leading BOM (as Windows PowerShell 5's `Out-File -Encoding utf8` writes): kept, the file's
  // JSON no longer parsed. A token was, and is, trimmed, which drops it too; --jwks (read with
  // Node's utf8, which keeps it) is read as the others now.
  const BOM = Buffer.of(0xef, 0xbb, 0xbf);
  const FIXTURES = new URL("../fixtures/attestation/azure/", import.meta.url);

  it("--evidence: real Azure TDX evidence with a BOM verifies as without", async () => {
    const file = join(dir, "bom-evidence.json");
    await writeFile(
      file,
      Buffer.concat([BOM, await readFile(new URL("tdx-vtpm/tdx-evidence-v1.trustee.json", FIXTURES))]),
    );
    const verdict = await verifyAzure({ tee: "azure-tdx", evidence: file, at: new Date("2024-01-01T00:00:00Z") });
    expect(verdict).toMatchObject({ valid: true, tee: "azure-tdx", code: null });
  });

  it("--policy and --jwks: a BOM before the JSON is not a JSON error", async () => {
    const policy = join(dir, "bom-policy.json");
    await writeFile(policy, Buffer.concat([BOM, Buffer.from(JSON.stringify(await devPolicy()))]));
    await expect(readPolicyOption(policy, "snp")).resolves.toMatchObject({ version: 1, trustSimulator: true });
    const jwks = join(dir, "bom-jwks.json");
    await writeFile(
      jwks,
      Buffer.concat([BOM, await readFile(new URL("maa/jwks-sharedwus-2022-05-31T22-47-56Z.json", FIXTURES))]),
    );
    const token = fileURLToPath(new URL("maa/maa-sgx-sharedwus-2022-05-31.jwt", FIXTURES));
    const verdict = await verifyAzure({ tee: "maa", token, jwks, at: new Date("2022-05-31T23:00:00Z") });
    expect(verdict).toMatchObject({ valid: true, tee: "maa" });
  });

  it("only one BOM, only at the start: a second one, or one inside, is still the parser's refusal", async () => {
    const policy = join(dir, "two-bom-policy.json");
    await writeFile(policy, Buffer.concat([BOM, BOM, Buffer.from(JSON.stringify(await devPolicy()))]));
    await expect(readPolicyOption(policy, "snp")).rejects.toMatchObject({ code: "POLICY_INVALID" });
  });
});

describe("strict UTF-8: the byte named is the first of the sequence that is not UTF-8", () => {
  // Bytes numbered from 1, as notUtf8Message names them. Where a sequence goes wrong only at a later
  // byte (a lead byte whose continuation is wrong or missing), the first byte of that sequence is named.
  const cases: readonly (readonly [string, readonly number[], number])[] = [
    ["a lone continuation byte", [0x61, 0x62, 0x80, 0x63], 3],
    ["a three-byte sequence cut short by the end", [0x61, 0x62, 0xe2, 0x82], 3],
    ["a three-byte sequence cut short by the next character", [0x61, 0xe2, 0x82, 0x63], 2],
    ["an overlong two-byte encoding (C0 AF for '/')", [0x61, 0xc0, 0xaf], 2],
    ["an overlong three-byte encoding (E0 80 AF for '/')", [0x61, 0x62, 0xe0, 0x80, 0xaf], 3],
    ["a surrogate encoded in UTF-8 (ED A0 80)", [0x61, 0xed, 0xa0, 0x80, 0x62], 2],
    ["a four-byte sequence past U+10FFFF (F4 90 80 80)", [0xc3, 0xa9, 0xf4, 0x90, 0x80, 0x80], 3],
    ["after a four-byte character, a lone 0xFF", [0xf0, 0x9f, 0x98, 0x80, 0xff], 5],
  ];
  for (const [index, [name, bytes, byte]] of cases.entries()) {
    it(`${name}: byte ${byte}`, async () => {
      expect(decodeUtf8(Uint8Array.from(bytes))).toEqual({ notUtf8At: byte - 1 });
      const path = join(dir, `not-utf8-${index}.txt`);
      await writeFile(path, Uint8Array.from(bytes));
      await expect(refusal(readOptionFile(path, "--x", { bytes: 64, expected: "text" }))).resolves.toEqual(
        new UsageError(`--x ${path}: expected UTF-8 text, found a byte that is not UTF-8 (byte ${byte} of the file)`),
      );
    });
  }
});
