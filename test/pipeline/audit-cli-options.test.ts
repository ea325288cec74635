/**
 * `cloister audit verify` options, in process: each check of --last-hash, --count and --checkpoint
 * on its own (found by mutation testing of enclave/audit-cli-impl.ts).
 */
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import nacl from "tweetnacl";
import { afterAll, beforeEach, describe, expect, it, vi } from "vitest";
import {
  AuditDocumentInvalidError,
  auditFindCommand,
  auditVerifyCommand,
  keyFromAttestationDocument,
} from "../../enclave/audit-cli-impl.ts";
import { type AuditEntry, auditRequestIdHash } from "../../enclave/pipeline/audit.ts";
import { fifoWriter } from "../helpers/pipes.ts";
import { thrownBy } from "../helpers/rejections.ts";
import { makeWriter, sampleEntries, seededKeyPair, writeLog } from "./helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "cloister-audit-options-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeEach(() => {
  vi.spyOn(process.stdout, "write").mockImplementation(() => true);
  return () => vi.restoreAllMocks();
});

const KEYS = seededKeyPair(7);
const KEY_HEX = Buffer.from(KEYS.publicKey).toString("hex");
const p = (name: string) => join(dir, name);

// Two logs of the same length under the same key, with different histories: only the last record's
// hash tells them apart.
const writer = makeWriter();
writeFileSync(p("a.jsonl"), `${writeLog(3, writer).join("\n")}\n`);
writeFileSync(p("a-checkpoint.json"), `${writer.checkpoint()}\n`);
const fork = makeWriter();
writeFileSync(
  p("b.jsonl"),
  `${sampleEntries(3, "fork")
    .map((e) => fork.record(e).line)
    .join("\n")}\n`,
);
const aLastHash = (JSON.parse(writer.checkpoint()) as { checkpoint: { lastRecordHash: string } }).checkpoint
  .lastRecordHash;

describe("cloister audit verify: --checkpoint, --count, --last-hash", () => {
  it("a log of the checkpoint's length but another history fails on the checkpoint's last record hash", async () => {
    await expect(
      auditVerifyCommand({ log: p("a.jsonl"), key: KEY_HEX, checkpoint: p("a-checkpoint.json") }),
    ).resolves.toBeUndefined();
    await expect(
      auditVerifyCommand({ log: p("b.jsonl"), key: KEY_HEX, checkpoint: p("a-checkpoint.json") }),
    ).rejects.toMatchObject({
      code: "AUDIT_CHECKPOINT_MISMATCH",
      message: expect.stringContaining("hash of record seq 2"),
    });
  });

  it("a checkpoint of one record says so in the singular", async () => {
    const one = makeWriter();
    writeFileSync(p("one.jsonl"), `${writeLog(1, one).join("\n")}\n`);
    writeFileSync(p("one-checkpoint.json"), `${one.checkpoint()}\n`);
    const { checkpoint } = JSON.parse(readFileSync(p("one-checkpoint.json"), "utf8")) as {
      checkpoint: { count: number; time: string };
    };
    expect(checkpoint.count).toBe(1);
    const out = vi.spyOn(process.stdout, "write").mockImplementation(() => true);
    await auditVerifyCommand({ log: p("one.jsonl"), key: KEY_HEX, checkpoint: p("one-checkpoint.json") });
    const printed = out.mock.calls.map((call) => String(call[0])).join("");
    expect(printed).toContain("audit log valid: 1 record, last record hash");
    expect(printed).toContain(
      `complete up to the checkpoint: 1 record written as of ${checkpoint.time} (signed by the enclave then`,
    );
  });

  it("a log that reaches a checkpoint says which: its count and the time it was signed (an old one shows no cut end)", async () => {
    const { checkpoint } = JSON.parse(readFileSync(p("a-checkpoint.json"), "utf8")) as {
      checkpoint: { count: number; lastRecordHash: string; time: string };
    };
    expect(checkpoint).toMatchObject({ count: 3, lastRecordHash: aLastHash });
    const out = vi.spyOn(process.stdout, "write").mockImplementation(() => true);
    const printed = () => out.mock.calls.map((call) => String(call[0])).join("");
    await auditVerifyCommand({ log: p("a.jsonl"), key: KEY_HEX, checkpoint: p("a-checkpoint.json") });
    expect(printed()).toContain(
      `complete up to the checkpoint: 3 records written as of ${checkpoint.time} (signed by the enclave then`,
    );
    out.mockClear();
    await auditVerifyCommand({ log: p("a.jsonl"), key: KEY_HEX, checkpoint: p("a-checkpoint.json"), json: true });
    expect(JSON.parse(printed())).toMatchObject({
      valid: true,
      checkpoint: { count: 3, lastRecordHash: aLastHash, time: checkpoint.time, nonce: null },
    });
    out.mockClear();
    await auditVerifyCommand({ log: p("a.jsonl"), key: KEY_HEX, json: true });
    expect(JSON.parse(printed())).toMatchObject({ valid: true, checkpoint: null });
  });

  it("without --checkpoint or --count a valid log says its end was not checked (its last records, or all, may be cut)", async () => {
    writeFileSync(p("cut-end.jsonl"), `${readFileSync(p("a.jsonl"), "utf8").split("\n").slice(0, 2).join("\n")}\n`);
    writeFileSync(p("cut-all.jsonl"), "");
    const err = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    const noted = () => err.mock.calls.map((call) => String(call[0])).join("");
    const note =
      "note: records cut from the end of the log (or all of them) are not detected without --checkpoint (or --count): fetch a fresh checkpoint with cloister audit checkpoint\n";
    for (const log of [p("cut-end.jsonl"), p("cut-all.jsonl"), p("a.jsonl")]) {
      err.mockClear();
      await auditVerifyCommand({ log, key: KEY_HEX });
      expect(noted()).toBe(note);
    }
    err.mockClear();
    await auditVerifyCommand({ log: p("a.jsonl"), key: KEY_HEX, checkpoint: p("a-checkpoint.json") });
    await auditVerifyCommand({ log: p("a.jsonl"), key: KEY_HEX, count: 3 });
    await auditVerifyCommand({ log: p("a.jsonl"), key: KEY_HEX, json: true });
    expect(noted()).toBe("");
  });

  it("a --checkpoint or --document file far larger than one is refused by its size, read no further", async () => {
    writeFileSync(p("huge-checkpoint.json"), " ".repeat(64 * 1024 + 1));
    await expect(
      auditVerifyCommand({ log: p("a.jsonl"), key: KEY_HEX, checkpoint: p("huge-checkpoint.json") }),
    ).rejects.toMatchObject({
      code: "USAGE",
      message: `--checkpoint ${p("huge-checkpoint.json")}: expected at most 65536 bytes (a checkpoint line is about 300 bytes), found more`,
    });
    // A pipe that never ends is read only up to the bound.
    const endless = fifoWriter(p("endless-checkpoint.fifo"), "endless");
    try {
      await expect(
        auditVerifyCommand({ log: p("a.jsonl"), key: KEY_HEX, checkpoint: p("endless-checkpoint.fifo") }),
      ).rejects.toMatchObject({ code: "USAGE", message: expect.stringContaining("expected at most 65536 bytes") });
    } finally {
      endless.stop();
    }
    writeFileSync(p("huge-document.jws"), "a".repeat(4 * 1024 * 1024 + 1));
    await expect(auditVerifyCommand({ log: p("a.jsonl"), document: p("huge-document.jws") })).rejects.toMatchObject({
      code: "USAGE",
      message: `--document ${p("huge-document.jws")}: expected at most 4194304 bytes (an attestation document), found more`,
    });
  });

  it("audit find: a --chat-json or --opening-file far larger than one is refused by its size, read no further", async () => {
    const requestIdHash = auditRequestIdHash(sampleEntries(1)[0]?.requestId as string);
    // A sparse file: 64 MiB + 1 bytes on no disk space.
    writeFileSync(p("huge-chat.json"), "");
    truncateSync(p("huge-chat.json"), 64 * 1024 * 1024 + 1);
    const chatBound =
      "expected at most 67108864 bytes (cloister chat --json output: an answer of at most 1048576 tokens, its receipt and keys), found more";
    await expect(auditFindCommand({ log: p("a.jsonl"), chatJson: p("huge-chat.json") })).rejects.toMatchObject({
      code: "USAGE",
      message: `--chat-json ${p("huge-chat.json")}: ${chatBound}`,
    });
    const endlessChat = fifoWriter(p("endless-chat.fifo"), "endless");
    try {
      await expect(auditFindCommand({ log: p("a.jsonl"), chatJson: p("endless-chat.fifo") })).rejects.toMatchObject({
        code: "USAGE",
        message: `--chat-json ${p("endless-chat.fifo")}: ${chatBound}`,
      });
    } finally {
      endlessChat.stop();
    }
    const openingBound = "expected at most 1024 bytes (an opening is 64 hex digits), found more";
    writeFileSync(p("huge-opening.txt"), `${"0".repeat(64)}${" ".repeat(1024 - 64 + 1)}`);
    const find = (openingFile: string) =>
      auditFindCommand({ log: p("a.jsonl"), key: KEY_HEX, requestIdHash, openingFile });
    await expect(find(p("huge-opening.txt"))).rejects.toMatchObject({
      code: "USAGE",
      message: `--opening-file ${p("huge-opening.txt")}: ${openingBound}`,
    });
    const endlessOpening = fifoWriter(p("endless-opening.fifo"), "endless");
    try {
      await expect(find(p("endless-opening.fifo"))).rejects.toMatchObject({
        code: "USAGE",
        message: `--opening-file ${p("endless-opening.fifo")}: ${openingBound}`,
      });
    } finally {
      endlessOpening.stop();
    }
    // At the bound, the file is read (and its opening checked, here the wrong length).
    writeFileSync(p("bound-opening.txt"), "0".repeat(1024));
    await expect(find(p("bound-opening.txt"))).rejects.toMatchObject({
      code: "USAGE",
      message: `--opening-file ${p("bound-opening.txt")}: expected 64 lower-case hex digits, found 1024 characters`,
    });
  });

  it("audit find: a --prompt-file or --answer-file larger than any prompt or answer is refused by its size, read no further", async () => {
    const requestId = sampleEntries(1)[0]?.requestId as string;
    writeFileSync(p("find-opening.txt"), Buffer.from(writer.openingFor(requestId)).toString("hex"));
    const find = (files: { promptFile?: string; answerFile?: string }) =>
      auditFindCommand({
        log: p("a.jsonl"),
        key: KEY_HEX,
        requestIdHash: auditRequestIdHash(requestId),
        openingFile: p("find-opening.txt"),
        ...files,
      });
    // Sparse files: one byte past each bound on no disk space.
    writeFileSync(p("huge-prompt.txt"), "");
    truncateSync(p("huge-prompt.txt"), 16 * 1024 * 1024 + 1);
    writeFileSync(p("huge-answer.txt"), "");
    truncateSync(p("huge-answer.txt"), 64 * 1024 * 1024 + 1);
    const promptBound =
      "expected at most 16777216 bytes (a prompt is at most the enclave's largest sealed request, 16 MiB), found more";
    const answerBound =
      "expected at most 67108864 bytes (an answer of at most 1048576 tokens, the most a manifest lets maxTokens be), found more";
    for (const [promptFile, answerFile, message] of [
      [p("huge-prompt.txt"), undefined, `--prompt-file ${p("huge-prompt.txt")}: ${promptBound}`],
      [p("endless-prompt.fifo"), undefined, `--prompt-file ${p("endless-prompt.fifo")}: ${promptBound}`],
      [undefined, p("huge-answer.txt"), `--answer-file ${p("huge-answer.txt")}: ${answerBound}`],
      [undefined, p("endless-answer.fifo"), `--answer-file ${p("endless-answer.fifo")}: ${answerBound}`],
    ] as const) {
      const endless = [promptFile, answerFile].find((file) => file?.endsWith(".fifo"));
      const writer = endless === undefined ? undefined : fifoWriter(endless, "endless");
      await expect(
        find({
          ...(promptFile === undefined ? {} : { promptFile }),
          ...(answerFile === undefined ? {} : { answerFile }),
        }),
        message,
      ).rejects.toMatchObject({ code: "USAGE", message });
      writer?.stop();
    }
    await expect(find({ promptFile: p("no-such-prompt.txt") })).rejects.toMatchObject({
      code: "USAGE",
      message: expect.stringContaining(`--prompt-file ${p("no-such-prompt.txt")}: cannot read (ENOENT`),
    });
  });

  it("audit find: --prompt-file or --answer-file without an opening is refused as that, before either file is read", async () => {
    const requestIdHash = auditRequestIdHash(sampleEntries(1)[0]?.requestId as string);
    const noOpening = {
      code: "USAGE",
      message:
        "--prompt-file and --answer-file need the record's opening (--chat-json or --opening-file) (run with --help for usage)",
    };
    // Neither file exists, and /dev/zero never ends: the missing opening is named, not the files.
    for (const files of [
      { promptFile: p("no-such-prompt.txt") },
      { answerFile: p("no-such-answer.txt") },
      { promptFile: "/dev/zero", answerFile: p("no-such-answer.txt") },
      { promptFile: p("no-such-prompt.txt"), answerFile: "/dev/zero" },
    ]) {
      await expect(
        auditFindCommand({ log: p("a.jsonl"), key: KEY_HEX, requestIdHash, ...files }),
        JSON.stringify(files),
      ).rejects.toMatchObject(noOpening);
    }
    // Nor is a --document read first.
    await expect(
      auditFindCommand({ log: p("a.jsonl"), document: p("no-such.jws"), requestIdHash, promptFile: "/dev/zero" }),
    ).rejects.toMatchObject(noOpening);
  });

  it("audit find: --prompt-file and --answer-file are compared as the bytes they hold, never decoded", async () => {
    // A prompt and an answer that start with U+FEFF: a decoder that drops a byte order mark (the
    // default TextDecoder) would compare other bytes than the ones committed to.
    const bomWriter = makeWriter();
    const [entry] = sampleEntries(1);
    const requestId = entry?.requestId as string;
    writeFileSync(
      p("bom.jsonl"),
      `${bomWriter.record({ ...(entry as AuditEntry), prompt: "\uFEFFprompt", response: "\uFEFFanswer" }).line}\n`,
    );
    writeFileSync(p("bom-opening.txt"), Buffer.from(bomWriter.openingFor(requestId)).toString("hex"));
    writeFileSync(p("bom-prompt.txt"), "\uFEFFprompt");
    writeFileSync(p("bom-answer.txt"), "\uFEFFanswer");
    writeFileSync(p("plain-prompt.txt"), "prompt");
    const out = vi.spyOn(process.stdout, "write").mockImplementation(() => true);
    const find = (promptFile: string) =>
      auditFindCommand({
        log: p("bom.jsonl"),
        key: KEY_HEX,
        requestIdHash: auditRequestIdHash(requestId),
        openingFile: p("bom-opening.txt"),
        promptFile,
        answerFile: p("bom-answer.txt"),
        json: true,
      });
    await find(p("bom-prompt.txt"));
    expect(JSON.parse(String(out.mock.calls.at(-1)?.[0]))).toMatchObject({
      found: true,
      matches: { prompt: true, answer: true },
    });
    await find(p("plain-prompt.txt"));
    expect(JSON.parse(String(out.mock.calls.at(-1)?.[0]))).toMatchObject({
      found: true,
      matches: { prompt: false, answer: true },
      code: "AUDIT_COMMITMENT_MISMATCH",
    });
    process.exitCode = undefined;
  });

  it("a --checkpoint, --document or --chat-json file that is not UTF-8 is a usage error naming the file and the byte", async () => {
    // Decoded loosely, a bad byte became U+FFFD: other bytes than the file's would be checked (an
    // answer text re-encoded, a document digest computed over another text).
    const checkpointLine = readFileSync(p("a-checkpoint.json"));
    const at = checkpointLine.indexOf("nonce");
    writeFileSync(
      p("bad-checkpoint.json"),
      Buffer.concat([checkpointLine.subarray(0, at), Buffer.from([0xff]), checkpointLine.subarray(at)]),
    );
    writeFileSync(p("bad-document.jws"), Buffer.from([0x61, 0x62, 0xc3, 0x28]));
    writeFileSync(
      p("bad-chat.json"),
      Buffer.concat([Buffer.from('{"text":"a'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}')]),
    );
    writeFileSync(p("cut-chat.json"), Buffer.concat([Buffer.from('{"text":"a"}'), Buffer.from([0xe2, 0x82])]));
    const notUtf8 = (option: string, file: string, byte: number) => ({
      code: "USAGE",
      message: `${option} ${file}: expected UTF-8 text, found a byte that is not UTF-8 (byte ${byte} of the file)`,
    });
    await expect(
      auditVerifyCommand({ log: p("a.jsonl"), key: KEY_HEX, checkpoint: p("bad-checkpoint.json") }),
    ).rejects.toMatchObject(notUtf8("--checkpoint", p("bad-checkpoint.json"), at + 1));
    await expect(auditVerifyCommand({ log: p("a.jsonl"), document: p("bad-document.jws") })).rejects.toMatchObject(
      notUtf8("--document", p("bad-document.jws"), 3), // C3 28: a two-byte sequence with no continuation
    );
    // An encoded surrogate (ED A0 80) is not UTF-8: named by its first byte.
    await expect(auditFindCommand({ log: p("a.jsonl"), chatJson: p("bad-chat.json") })).rejects.toMatchObject(
      notUtf8("--chat-json", p("bad-chat.json"), 11),
    );
    // A sequence cut short by the file's end: named by its first byte.
    await expect(auditFindCommand({ log: p("a.jsonl"), chatJson: p("cut-chat.json") })).rejects.toMatchObject(
      notUtf8("--chat-json", p("cut-chat.json"), 13),
    );
  });

  it("audit find: a --chat-json that is not JSON is a usage error naming the file, with where it went wrong as its cause, never the text", async () => {
    // The output of cloister chat --json holds the answer: V8's SyntaxError quotes the text, and
    // util.inspect prints a cause.
    writeFileSync(p("not-json-chat.json"), 'a private answer {"text":"the answer"}');
    const error = await auditFindCommand({ log: p("a.jsonl"), chatJson: p("not-json-chat.json") }).then(
      () => expect.unreachable("a --chat-json that is not JSON was taken"),
      (e: unknown) => e as Error,
    );
    expect(error).toMatchObject({
      code: "USAGE",
      message: `--chat-json ${p("not-json-chat.json")}: not JSON (expected the output of cloister chat --json)`,
    });
    expect(error.cause).toBeInstanceOf(SyntaxError);
    expect((error.cause as SyntaxError).message).toBe("not valid JSON");
    expect(inspect(error)).not.toContain("answer");
  });

  it("audit find: a --chat-json that names a member twice is refused, naming the file and the member, never the text", async () => {
    // JSON.parse kept the last "audit", while a reader of the file sees the first: which was looked up?
    const audit = (n: string) => `{"requestIdHash":"${n.repeat(64)}","opening":"${n.repeat(64)}"}`;
    writeFileSync(p("twice-chat.json"), `{"text":"a private answer","audit":${audit("a")},"audit":${audit("b")}}`);
    const error = await auditFindCommand({ log: p("a.jsonl"), chatJson: p("twice-chat.json") }).then(
      () => expect.unreachable("a --chat-json with a member named twice was taken"),
      (e: unknown) => e as Error,
    );
    expect(error).toMatchObject({
      code: "USAGE",
      message: `--chat-json ${p("twice-chat.json")}: audit appears twice in one object (the second at position 197): expected each member once (JSON.parse would use the last while a reader sees the first); remove one`,
    });
    expect(inspect(error)).not.toContain("private answer");
  });

  it("--count with --last-hash: the last record's hash is checked too", async () => {
    await expect(
      auditVerifyCommand({ log: p("a.jsonl"), key: KEY_HEX, count: 3, lastHash: aLastHash }),
    ).resolves.toBeUndefined();
    await expect(
      auditVerifyCommand({ log: p("b.jsonl"), key: KEY_HEX, count: 3, lastHash: aLastHash }),
    ).rejects.toMatchObject({ code: "AUDIT_CHECKPOINT_MISMATCH" });
  });

  it("refuses a --last-hash that is not 64 lower-case hex characters, and --checkpoint with --count", async () => {
    await expect(
      auditVerifyCommand({ log: p("a.jsonl"), key: KEY_HEX, count: 3, lastHash: aLastHash.toUpperCase() }),
    ).rejects.toThrow("--last-hash expects 64 lower-case hex characters, found 64 characters");
    await expect(
      auditVerifyCommand({ log: p("a.jsonl"), key: KEY_HEX, count: 3, checkpoint: p("a-checkpoint.json") }),
    ).rejects.toThrow("give either --checkpoint or --count, not both");
  });
});

describe("keyFromAttestationDocument", () => {
  const b64u = (b: Uint8Array | string) => Buffer.from(b).toString("base64url");
  it.each([
    ["no dot", "abc", "1"],
    ["one dot", "abc.def", "2"],
    ["three dots", "a.b.c.d", "more than 3"],
    ["a document of dots", ".".repeat(100_000), "more than 3"],
  ])("refuses a document that is not three JWS parts (%s), naming how many it found", (_, document, found) => {
    expect(() => keyFromAttestationDocument(document)).toThrow(
      new AuditDocumentInvalidError(`attestation document: expected a compact JWS (3 parts), found ${found}`),
    );
  });

  it("refuses a document whose header names another algorithm, even signed by its sig_jwk", () => {
    const header = b64u(JSON.stringify({ alg: "ES256" }));
    const payload = b64u(JSON.stringify({ sig_jwk: { kty: "OKP", crv: "Ed25519", x: b64u(KEYS.publicKey) } }));
    const sig = nacl.sign.detached(new TextEncoder().encode(`${header}.${payload}`), KEYS.secretKey);
    expect(() => keyFromAttestationDocument(`${header}.${payload}.${b64u(sig)}`)).toThrow(
      'attestation document alg: expected "EdDSA", found "ES256"',
    );
  });

  it.each([
    [
      "payload",
      "a character outside the alphabet",
      (part: string) => `${part.slice(0, 4)}!${part.slice(4)}`,
      () => '"!" at character 4',
    ],
    ["payload", "white space", (part: string) => `${part.slice(0, 4)} ${part.slice(4)}`, () => '" " at character 4'],
    ["payload", "padding", (part: string) => `${part}==`, (part: string) => `"=" at character ${part.length}`],
    ["header", "a character outside the alphabet", (part: string) => `*${part}`, () => '"*" at character 0'],
    // Other trailing bits than the encoder writes: another spelling of the same bytes.
    [
      "header",
      "non-canonical trailing bits",
      (part: string) => `${part.slice(0, -1)}${String.fromCharCode(part.charCodeAt(part.length - 1) + 1)}`,
      () => "unused bits set in its last character",
    ],
  ] as const)(
    "refuses a document whose %s has %s, even signed by its sig_jwk (one spelling, as the verifier reads it)",
    (which, _what, spoil, found) => {
      // 26 bytes: 35 characters, the last holding 2 bits of data and 4 zero bits.
      const goodHeader = b64u(JSON.stringify({ alg: "EdDSA", kid: "k1" }));
      const goodPayload = b64u(JSON.stringify({ sig_jwk: { kty: "OKP", crv: "Ed25519", x: b64u(KEYS.publicKey) } }));
      const good = which === "header" ? goodHeader : goodPayload;
      const header = which === "header" ? spoil(goodHeader) : goodHeader;
      const payload = which === "payload" ? spoil(goodPayload) : goodPayload;
      // The loose decoder (Buffer's) still reads the spoiled part as the same bytes.
      expect(Buffer.from(spoil(good), "base64url").toString()).toBe(Buffer.from(good, "base64url").toString());
      const sig = nacl.sign.detached(new TextEncoder().encode(`${header}.${payload}`), KEYS.secretKey);
      expect(thrownBy(() => keyFromAttestationDocument(`${header}.${payload}.${b64u(sig)}`), Error)).toMatchObject({
        code: "AUDIT_DOCUMENT_INVALID",
        message: `attestation document ${which}: expected base64url (A-Z, a-z, 0-9, "-", "_"; no padding; unused bits zero), found ${found(good)}`,
      });
    },
  );

  it("refuses a sig_jwk.x or a signature of another spelling than an encoder writes, though Buffer decodes it to the right bytes", () => {
    const header = b64u(JSON.stringify({ alg: "EdDSA" }));
    const x = b64u(KEYS.publicKey);
    const sign = (payload: string) =>
      b64u(nacl.sign.detached(new TextEncoder().encode(`${header}.${payload}`), KEYS.secretKey));
    const refusal = (document: string) => {
      try {
        keyFromAttestationDocument(document);
      } catch (error) {
        return error;
      }
      return undefined;
    };
    const expected = (part: string, found: string) => ({
      code: "AUDIT_DOCUMENT_INVALID",
      message: `attestation document ${part}: expected base64url (A-Z, a-z, 0-9, "-", "_"; no padding; unused bits zero), found ${found}`,
    });
    const looseX = b64u(
      JSON.stringify({ sig_jwk: { kty: "OKP", crv: "Ed25519", x: `${x.slice(0, 4)}!${x.slice(4)}` } }),
    );
    expect(refusal(`${header}.${looseX}.${sign(looseX)}`)).toMatchObject(expected("sig_jwk.x", '"!" at character 4'));
    // 64 bytes: 86 characters, the last holding 2 bits of data and 4 zero bits.
    const payload = b64u(JSON.stringify({ sig_jwk: { kty: "OKP", crv: "Ed25519", x } }));
    const sig = sign(payload);
    const respelled = `${sig.slice(0, -1)}${String.fromCharCode(sig.charCodeAt(sig.length - 1) + 1)}`;
    expect(Buffer.from(respelled, "base64url")).toEqual(Buffer.from(sig, "base64url"));
    expect(refusal(`${header}.${payload}.${respelled}`)).toMatchObject(
      expected("signature", "unused bits set in its last character"),
    );
    expect(keyFromAttestationDocument(`${header}.${payload}.${sig}`)).toEqual(KEYS.publicKey);
  });

  it("refuses a signature whose S is not reduced (S + L) and a small-order sig_jwk.x, which tweetnacl alone accepts (as receipts and records are read)", () => {
    const header = b64u('{"alg":"EdDSA"}');
    const refusal = (document: string) => {
      try {
        return keyFromAttestationDocument(document);
      } catch (error) {
        return error;
      }
    };
    // S + L: the same signature in another spelling; tweetnacl verifies it, Node and WebCrypto do not.
    const payload = b64u(JSON.stringify({ sig_jwk: { kty: "OKP", crv: "Ed25519", x: b64u(KEYS.publicKey) } }));
    const sig = nacl.sign.detached(new TextEncoder().encode(`${header}.${payload}`), KEYS.secretKey);
    const L = 2n ** 252n + 27742317777372353535851937790883648493n;
    let s = 0n;
    for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(sig[i] as number);
    s += L;
    const unreduced = new Uint8Array(sig);
    for (let i = 32; i < 64; i++, s >>= 8n) unreduced[i] = Number(s & 0xffn);
    expect(nacl.sign.detached.verify(new TextEncoder().encode(`${header}.${payload}`), unreduced, KEYS.publicKey)).toBe(
      true,
    );
    expect(refusal(`${header}.${payload}.${b64u(unreduced)}`)).toMatchObject({
      code: "AUDIT_DOCUMENT_INVALID",
      reason: "signature",
      message: "attestation document: the JWS signature does not verify under its own sig_jwk",
    });
    // The identity point as the key, R the identity and S zero: "verifies" any text under tweetnacl.
    const identity = new Uint8Array(32);
    identity[0] = 1;
    const forged = new Uint8Array(64);
    forged.set(identity);
    const smallPayload = b64u(JSON.stringify({ sig_jwk: { kty: "OKP", crv: "Ed25519", x: b64u(identity) } }));
    expect(nacl.sign.detached.verify(new TextEncoder().encode(`${header}.${smallPayload}`), forged, identity)).toBe(
      true,
    );
    // Worded as every reader of an enclave's key words it (audit.ts' ed25519PublicKeyProblem).
    expect(refusal(`${header}.${smallPayload}.${b64u(forged)}`)).toMatchObject({
      code: "AUDIT_DOCUMENT_INVALID",
      message: "attestation document sig_jwk.x: expected a point of large order, found a small-order point",
    });
    const shortPayload = b64u(
      JSON.stringify({ sig_jwk: { kty: "OKP", crv: "Ed25519", x: b64u(identity.subarray(1)) } }),
    );
    expect(refusal(`${header}.${shortPayload}.${b64u(forged)}`)).toMatchObject({
      code: "AUDIT_DOCUMENT_INVALID",
      message: "attestation document sig_jwk.x: expected 32 bytes, found 31 bytes",
    });
  });

  it("refuses a header or payload whose bytes could mean two things, even signed by its sig_jwk (read as the verifier reads them)", () => {
    const x = b64u(KEYS.publicKey);
    const other = b64u(seededKeyPair(8).publicKey);
    const encode = (text: string) => new TextEncoder().encode(text);
    const refusal = (header: Uint8Array, payload: Uint8Array) => {
      const signingInput = `${b64u(header)}.${b64u(payload)}`;
      const sig = b64u(nacl.sign.detached(encode(signingInput), KEYS.secretKey));
      try {
        return keyFromAttestationDocument(`${signingInput}.${sig}`);
      } catch (error) {
        return error;
      }
    };
    const header = encode('{"alg":"EdDSA"}');
    const payload = `{"sig_jwk":{"kty":"OKP","crv":"Ed25519","x":"${other}","x":"${x}"}}`;
    expect(refusal(header, encode(payload))).toMatchObject({
      code: "AUDIT_DOCUMENT_INVALID",
      message: `attestation document payload: sig_jwk.x appears twice in one object (the second at position ${payload.lastIndexOf('"x"')}): expected each member once (JSON.parse would use the last while a reader sees the first); remove one`,
    });
    // The reader's own refusal stays under it, as the cause.
    expect((refusal(header, encode(payload)) as Error).cause).toBeInstanceOf(SyntaxError);
    const jwk = encode(`{"sig_jwk":{"kty":"OKP","crv":"Ed25519","x":"${x}"}}`);
    const badByte = encode('{"alg":"EdDSA","kid":"k?"}');
    badByte[badByte.length - 3] = 0xff;
    expect(refusal(badByte, jwk)).toMatchObject({
      code: "AUDIT_DOCUMENT_INVALID",
      message: `attestation document header: expected UTF-8 JSON, found bytes that are not UTF-8 (from offset ${badByte.length - 3})`,
    });
    expect(refusal(encode('\uFEFF{"alg":"EdDSA"}'), jwk)).toMatchObject({
      code: "AUDIT_DOCUMENT_INVALID",
      message: "attestation document header: expected UTF-8 JSON, found a byte order mark before it (offsets 0 to 2)",
    });
    expect(refusal(header, jwk)).toEqual(KEYS.publicKey);
  });

  it.each([
    ["absent", {}, "found nothing"],
    ["an object", { alg: { kid: "x" } }, "found an object"],
    [
      "long, with a terminal escape",
      { alg: `\u001b[2J${"A".repeat(5000)}` },
      `found "\uFFFD[2J${"A".repeat(60)}"… (5004 characters)`,
    ],
  ])(
    "names an alg that is %s by the untrusted-text describer: cut short, no control characters",
    (_what, header, found) => {
      const h = b64u(JSON.stringify(header));
      const payload = b64u(JSON.stringify({ sig_jwk: { kty: "OKP", crv: "Ed25519", x: b64u(KEYS.publicKey) } }));
      let message = "";
      try {
        keyFromAttestationDocument(`${h}.${payload}.${b64u(new Uint8Array(64))}`);
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).toBe(`attestation document alg: expected "EdDSA", ${found}`);
    },
  );
});

describe("files that are JSON but not the object expected", () => {
  const b64u = (b: Uint8Array | string) => Buffer.from(b).toString("base64url");
  const jwk = { kty: "OKP", crv: "Ed25519", x: b64u(KEYS.publicKey) };

  it.each([
    [
      "header null",
      "null",
      JSON.stringify({ sig_jwk: jwk }),
      "attestation document header: expected a JSON object, found null",
    ],
    [
      "header []",
      "[]",
      JSON.stringify({ sig_jwk: jwk }),
      "attestation document header: expected a JSON object, found an empty array",
    ],
    [
      "payload null",
      JSON.stringify({ alg: "EdDSA" }),
      "null",
      "attestation document payload: expected a JSON object, found null",
    ],
    [
      "payload 7",
      JSON.stringify({ alg: "EdDSA" }),
      "7",
      "attestation document payload: expected a JSON object, found 7",
    ],
  ])(
    "an attestation document with %s is AUDIT_DOCUMENT_INVALID, naming the part and what it holds",
    (_part, header, payload, message) => {
      const thrown = thrownBy(
        () => keyFromAttestationDocument(`${b64u(header)}.${b64u(payload)}.${b64u(new Uint8Array(64))}`),
        Error,
      );
      expect(thrown).toMatchObject({ code: "AUDIT_DOCUMENT_INVALID", message });
    },
  );

  it.each([
    ["null", "found null"],
    ["[1]", "found an array of 1 item"],
    ['"text"', "found a string of 4 characters"],
  ])("audit find --chat-json holding %s is a usage error naming what it holds", async (text, found) => {
    writeFileSync(p("chat-not-object.json"), text);
    await expect(auditFindCommand({ log: p("a.jsonl"), chatJson: p("chat-not-object.json") })).rejects.toMatchObject({
      code: "USAGE",
      message: `--chat-json ${p("chat-not-object.json")}: expected the JSON object cloister chat --json prints, ${found}`,
    });
  });

  it("audit find: a --chat-json without an audit field, or with a bad, missing or non-string audit.requestIdHash or audit.opening, names the file and the field, and what it found", async () => {
    const key = "ab".repeat(32);
    const hash = "cd".repeat(32);
    const hexOf = "expected 64 lower-case hex digits, found";
    // A missing or non-string field is said as found (none, null, 42), not as a String()'d text's
    // length ("undefined": 9 characters); the opening's digits, a JSON number of them, never shown.
    const cases: [object, string][] = [
      [{ signingKey: key }, "no audit field ("],
      [
        { signingKey: key, audit: { requestIdHash: "AB", opening: "cd".repeat(32) } },
        "audit.requestIdHash: expected 64",
      ],
      [
        { signingKey: key, audit: { requestIdHash: "cd".repeat(32), opening: "ef".repeat(30) } },
        "audit.opening: expected 64",
      ],
      [{ signingKey: key, audit: { opening: hash } }, `audit.requestIdHash: ${hexOf} none`],
      [{ signingKey: key, audit: { requestIdHash: 42, opening: hash } }, `audit.requestIdHash: ${hexOf} 42`],
      [{ signingKey: key, audit: { requestIdHash: hash } }, `audit.opening: ${hexOf} none`],
      [{ signingKey: key, audit: { requestIdHash: hash, opening: null } }, `audit.opening: ${hexOf} null`],
      [{ signingKey: key, audit: { requestIdHash: hash, opening: 987654321 } }, `audit.opening: ${hexOf} a number`],
      // Type and length only, whatever the type: no boolean's value, no key of an object (a key can
      // hold the opening's digits), no item.
      [{ signingKey: key, audit: { requestIdHash: hash, opening: true } }, `audit.opening: ${hexOf} a boolean`],
      [
        { signingKey: key, audit: { requestIdHash: hash, opening: { [`f${"0a".repeat(15)}`]: 1 } } },
        `audit.opening: ${hexOf} an object of 1 field`,
      ],
      [
        { signingKey: key, audit: { requestIdHash: hash, opening: ["ef".repeat(30), 987654321] } },
        `audit.opening: ${hexOf} an array of 2 items`,
      ],
    ];
    for (const [chat, reason] of cases) {
      writeFileSync(p("chat-fields.json"), JSON.stringify(chat));
      const error = await auditFindCommand({ log: p("a.jsonl"), chatJson: p("chat-fields.json") }).then(
        () => null,
        (e: unknown) => e as Error,
      );
      expect(error).toMatchObject({ code: "USAGE" });
      expect(error?.message.startsWith(`--chat-json ${p("chat-fields.json")}: ${reason}`), error?.message).toBe(true);
      expect(error?.message).not.toContain("ef".repeat(30));
      expect(error?.message).not.toContain("987654321");
      expect(error?.message).not.toContain("0a".repeat(15));
      expect(error?.message).not.toContain("true");
    }
  });

  it.each([
    ["the object chat --json prints", "chat-opening-twice.json", "audit.opening", (audit: string) => audit],
    // Refused as not that object only after the refusal of the member twice, which must not name it either.
    ["a file whose root is an array around it", "chat-array-twice.json", "0.audit.opening", (a: string) => `[${a}]`],
  ])(
    "audit find: a member twice inside audit.opening is refused without its name, in %s",
    async (_what, file, holder, wrap) => {
      // A plain field name (up to 32 characters, a letter first) is what a refusal of a member twice names:
      // a name can hold the opening's digits.
      const digits = `f${"0a".repeat(15)}`;
      const text = wrap(
        `{"signingKey":"${"ab".repeat(32)}","audit":{"requestIdHash":"${"cd".repeat(32)}","opening":{"${digits}":1,"${digits}":2}}}`,
      );
      writeFileSync(p(file), text);
      const error = await auditFindCommand({ log: p("a.jsonl"), chatJson: p(file) }).then(
        () => null,
        (e: unknown) => e as Error,
      );
      expect(error).toMatchObject({
        code: "USAGE",
        message: `--chat-json ${p(file)}: a member inside ${holder} appears twice in one object (the second at position ${text.lastIndexOf(`"${digits}"`)}): expected each member once (JSON.parse would use the last while a reader sees the first); remove one`,
      });
      // Nor in what util.inspect would print of it (a cause's own message).
      expect(inspect(error, { depth: 5 })).not.toContain(digits);
    },
  );
});

describe("cloister audit find without --json", () => {
  it("a prompt that does not match the record's commitment fails with AUDIT_COMMITMENT_MISMATCH", async () => {
    const requestId = sampleEntries(1)[0]?.requestId as string;
    writeFileSync(p("opening.txt"), Buffer.from(writer.openingFor(requestId)).toString("hex"));
    writeFileSync(p("prompt.txt"), "prompt 0 plain");
    writeFileSync(p("other-prompt.txt"), "prompt 0 other");
    const find = (promptFile: string) =>
      auditFindCommand({
        log: p("a.jsonl"),
        key: KEY_HEX,
        requestIdHash: auditRequestIdHash(requestId),
        openingFile: p("opening.txt"),
        promptFile,
        json: false,
      });
    await expect(find(p("prompt.txt"))).resolves.toBeUndefined();
    await expect(find(p("other-prompt.txt"))).rejects.toMatchObject({
      code: "AUDIT_COMMITMENT_MISMATCH",
      message: "the record's prompt commitment does not match the given text",
    });
  });
});
