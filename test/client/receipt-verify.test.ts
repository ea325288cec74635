/** `cloister receipt verify` (client/cli/run-receipt.ts): offline, tied to a saved document when given one. */
import { createHash } from "node:crypto";
import { mkdtemp, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import nacl from "tweetnacl";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { createAttestationDocument, type EnclaveKeys } from "../../attestation/document.ts";
import { DuplicateMemberError } from "../../attestation/json-text.ts";
import { UsageError } from "../../client/cli/output.ts";
import { NO_DOCUMENT_WARNING, runReceiptVerify } from "../../client/cli/run-receipt.ts";
import { AuditDocumentInvalidError } from "../../enclave/audit-cli-impl.ts";
import { type ReceiptFields, signReceipt, textHash } from "../../sealed/receipt.ts";

const keys: EnclaveKeys = {
  signing: nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(5)),
  sealing: nacl.box.keyPair.fromSecretKey(new Uint8Array(32).fill(6)),
};
const other: EnclaveKeys = {
  signing: nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(9)),
  sealing: keys.sealing,
};
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");
const KEY = hex(keys.signing.publicKey);

let dir: string;
let documentJws: string;
let output: { stdout: string; stderr: string };

const fields = (documentDigest: string, answer: string | Uint8Array = "The answer."): ReceiptFields => ({
  requestHash: "a".repeat(64),
  answerHash: textHash(answer),
  finishReason: "stop",
  promptTokens: 1,
  completionTokens: 2,
  modelSha256: "b".repeat(64),
  manifestDigest: "c".repeat(64),
  documentDigest,
  time: "2026-11-22T14:00:00.000Z",
});

function documentOf(enclave: EnclaveKeys): Promise<string> {
  return createAttestationDocument({
    keys: enclave,
    evidence: { type: "sev-snp" } as never, // not looked at offline
    manifest: "e30.e30.sig",
    maaToken: null,
    now: new Date("2026-11-22T13:00:00Z"),
  });
}

/** The refusal of a --document other than the one a receipt names: the receipt's digest expected, the document's found. */
const documentMismatch = (named: string, given: string) =>
  `--document: expected the attestation document the receipt names (its documentDigest), SHA-256 ${named}, found one whose SHA-256 is ${given} (behind a pool host each enclave has its own document: give the one of the enclave that signed the receipt)`;

async function file(name: string, content: string | Uint8Array): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, content);
  return path;
}

async function verify(options: { receipt: string; key?: string; document?: string; answerFile?: string }) {
  output = { stdout: "", stderr: "" };
  process.exitCode = undefined;
  await runReceiptVerify({ key: KEY, ...options, json: true });
  const exitCode = process.exitCode;
  process.exitCode = undefined;
  return { exitCode, result: JSON.parse(output.stdout) as Record<string, unknown>, stderr: output.stderr };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cloister-receipt-"));
  documentJws = await documentOf(keys);
});

afterAll(() => rm(dir, { recursive: true, force: true }));

afterEach(() => vi.restoreAllMocks());

describe("cloister receipt verify", () => {
  const capture = () => {
    vi.spyOn(process.stdout, "write").mockImplementation((chunk) => {
      output.stdout += String(chunk);
      return true;
    });
    vi.spyOn(process.stderr, "write").mockImplementation((chunk) => {
      output.stderr += String(chunk);
      return true;
    });
  };

  it("without --document: verifies under the key as given, and warns on stderr that nothing binds it", async () => {
    capture();
    const receipt = await file("plain.txt", `${signReceipt(fields("d".repeat(64)), keys.signing.secretKey)}\n`);
    const { exitCode, result, stderr } = await verify({ receipt });
    expect(exitCode).toBeUndefined();
    expect(result).toMatchObject({ valid: true, keyBoundToDocument: false, answerChecked: false });
    expect(stderr).toBe(NO_DOCUMENT_WARNING);
    expect(stderr).toMatch(/warning: no --document: .*only as good as where that key came from/);
  });

  it("--key: taken and refused as `audit verify --key` takes and refuses it, small-order keys too, before any file is read", async () => {
    capture();
    const receipt = await file("upper.txt", signReceipt(fields("d".repeat(64)), keys.signing.secretKey));
    // Upper-case hex and white space around it, as audit verify takes them.
    expect((await verify({ receipt, key: ` ${KEY.toUpperCase()}\n` })).result).toMatchObject({ valid: true });
    const missing = join(dir, "no-such-receipt.txt");
    const refusals: [string, string][] = [
      ["zz", "expected 64 hex characters, found 2 characters"],
      [`${KEY}00`, "expected 64 hex characters, found 66 characters"],
      [`${KEY.slice(2)}zz`, "expected 64 hex characters, found 64 characters"],
      // Small order: the neutral point (either sign bit) and the point of order 2.
      [`01${"00".repeat(31)}`, "expected a point of large order, found a small-order point"],
      [`01${"00".repeat(30)}80`, "expected a point of large order, found a small-order point"],
      [`ec${"ff".repeat(30)}7f`, "expected a point of large order, found a small-order point"],
    ];
    for (const [key, found] of refusals) {
      await expect(runReceiptVerify({ receipt: missing, key }), key).rejects.toMatchObject({
        code: "USAGE",
        message: `--key: enclave Ed25519 public key: ${found}`,
      });
    }
  });

  it("the output of a chat --json that failed (no receipt) is named as such, not checked as a receipt", async () => {
    capture();
    const refusal = { error: { kind: "policy", code: "POLICY_BLOCKED", reason: "…" }, enclave: null, audit: null };
    const receipt = await file("refused.json", `${JSON.stringify(refusal, null, 2)}\n`);
    await expect(runReceiptVerify({ receipt, key: KEY })).rejects.toMatchObject({
      code: "USAGE",
      message: `--receipt ${receipt}: expected a receipt line or the output of cloister chat --json with its receipt, found JSON with no receipt (the output of a request that failed has none)`,
    });
  });

  it("chat --json output naming receipt twice is refused naming the member: JSON.parse verified the last while a reader sees the first", async () => {
    capture();
    // Two receipts the enclave signed, for two answers: the file shows the first (and its text),
    // and `audit find --chat-json` refuses the file; JSON.parse would verify the second.
    const first = signReceipt(fields("d".repeat(64), "Answer A."), keys.signing.secretKey);
    const second = signReceipt(fields("d".repeat(64), "Answer B."), keys.signing.secretKey);
    const chat = `{"receipt":${JSON.stringify(first)},"text":"Answer A.","receipt":${JSON.stringify(second)}}\n`;
    const receipt = await file("receipt-twice.json", chat);
    const error = await verify({ receipt }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UsageError);
    expect((error as UsageError).message.startsWith(`--receipt ${receipt}: receipt appears twice in one object`)).toBe(
      true,
    );
    expect((error as UsageError).message).not.toContain(first);
    expect((error as UsageError).cause).toBeInstanceOf(DuplicateMemberError);
    // A member named twice elsewhere in the output (the answer's text) is refused the same way.
    const textTwice = await file(
      "text-twice.json",
      `{"receipt":${JSON.stringify(first)},"text":"Answer A.","text":"Answer B."}`,
    );
    const refused = await verify({ receipt: textTwice }).catch((e: unknown) => e);
    expect((refused as UsageError).cause).toBeInstanceOf(DuplicateMemberError);
    expect((refused as UsageError).message).toContain(": text appears twice in one object");
    // A failed request's output naming error twice: refused, not named as "no receipt".
    const errorTwice = await file("error-twice.json", '{"error":{"code":"A"},"error":{"code":"B"}}');
    const noReceipt = await verify({ receipt: errorTwice }).catch((e: unknown) => e);
    expect((noReceipt as UsageError).cause).toBeInstanceOf(DuplicateMemberError);
    // A receipt line itself with a field twice is not the canonical line: a receipt that does not
    // verify (valid: false), as before.
    const lineTwice = await file("line-twice.txt", first.replace('{"v":1,', '{"v":1,"v":1,'));
    expect((await verify({ receipt: lineTwice })).result).toMatchObject({ valid: false, code: "RECEIPT_INVALID" });
    // Each member once: verified as before.
    const once = await file("receipt-once.json", `{"receipt":${JSON.stringify(first)},"text":"Answer A."}`);
    expect((await verify({ receipt: once })).result).toMatchObject({ valid: true, answerHash: textHash("Answer A.") });
  });

  it("chat --json output with a name twice below audit.opening names only audit.opening (the client's secret), as audit find --chat-json does", async () => {
    capture();
    const receiptLine = signReceipt(fields("d".repeat(64), "Answer A."), keys.signing.secretKey);
    // An opening given as an object keyed by its digits (a plain name: 32 characters from a letter).
    const digits = "deadbeef00112233deadbeef00112233";
    const opening = await file(
      "opening-twice.json",
      `\uFEFF{"receipt":${JSON.stringify(receiptLine)},"text":"Answer A.","audit":{"opening":{"${digits}":1,"${digits}":2}}}\r\n`,
    );
    const error = await verify({ receipt: opening }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UsageError);
    expect((error as UsageError).message).toContain(
      `--receipt ${opening}: a member inside audit.opening appears twice in one object`,
    );
    expect((error as UsageError).message).not.toContain(digits);
    // The same file with its opening once (a byte order mark and CRLF around it): verified.
    const once = await file(
      "opening-once.json",
      `\uFEFF{"receipt":${JSON.stringify(receiptLine)},"text":"Answer A.","audit":{"opening":"${"e".repeat(64)}"}}\r\n`,
    );
    expect((await verify({ receipt: once })).result).toMatchObject({ valid: true, answerHash: textHash("Answer A.") });
  });

  it("with --document: the receipt names that document (saved JWS, or GET /v1/attestation JSON) and its key", async () => {
    capture();
    const digest = createHash("sha256").update(documentJws).digest("hex");
    const receipt = await file("bound.txt", signReceipt(fields(digest), keys.signing.secretKey));
    for (const saved of [`${documentJws}\n`, documentJws, JSON.stringify({ document: documentJws })]) {
      const document = await file("document.jws", saved);
      const { exitCode, result, stderr } = await verify({ receipt, document });
      expect({ exitCode, stderr }).toEqual({ exitCode: undefined, stderr: "" });
      expect(result).toMatchObject({ valid: true, keyBoundToDocument: true, documentDigest: digest });
    }
  });

  it("refuses a document the receipt does not name, a key the document does not carry, a forged document", async () => {
    capture();
    const digest = createHash("sha256").update(documentJws).digest("hex");
    const document = await file("document.jws", documentJws);
    // Not its exact bytes (a trailing space): refused, never trimmed into a match.
    const padded = await file("padded.jws", `${documentJws} `);
    const receipt = await file("r.txt", signReceipt(fields(digest), keys.signing.secretKey));
    const form = "--document: expected a compact JWS (three base64url parts, all non-empty, no white space)";
    await expect(verify({ receipt, document: padded })).rejects.toThrow(
      new UsageError(`${form}, found a string of ${documentJws.length + 1} characters`),
    );
    // An empty signature (the general JWS form allows one; a document never has one).
    const unsigned = documentJws.slice(0, documentJws.lastIndexOf(".") + 1);
    const emptySignature = await file("unsigned.jws", unsigned);
    await expect(verify({ receipt, document: emptySignature })).rejects.toThrow(
      new UsageError(`${form}, found a string of ${unsigned.length} characters`),
    );
    // Another document under the same key: its digest is not the one the receipt names.
    const otherJws = await documentOf({ ...keys, sealing: nacl.box.keyPair() });
    const otherDocument = await file("other.jws", otherJws);
    const otherDigest = createHash("sha256").update(otherJws).digest("hex");
    // Both digests shown: what the receipt names, and what --document hashes to.
    expect((await verify({ receipt, document: otherDocument })).result).toEqual({
      valid: false,
      code: "RECEIPT_MISMATCH",
      reason: documentMismatch(digest, otherDigest),
    });
    // A receipt signed (and --key given) by another key than the document's.
    const foreign = await file("f.txt", signReceipt(fields(digest), other.signing.secretKey));
    const wrongKey = await verify({ receipt: foreign, key: hex(other.signing.publicKey), document });
    expect(wrongKey.exitCode).toBe(1);
    expect(wrongKey.result).toEqual({
      valid: false,
      code: "RECEIPT_KEY_MISMATCH",
      reason: `--key: expected the signing key of --document, ${KEY}, found ${hex(other.signing.publicKey)}`,
    });
    // Another kind of JWS: the field that differs, expected and found.
    const [, payloadPart, signaturePart] = documentJws.split(".");
    const jwtHeader = Buffer.from(JSON.stringify({ alg: "EdDSA", typ: "JWT" })).toString("base64url");
    const jwt = await file("jwt.jws", `${jwtHeader}.${payloadPart}.${signaturePart}`);
    await expect(verify({ receipt, document: jwt })).rejects.toThrow(
      /^--document: typ: expected "[^"]+" \(a Cloister attestation document\), found "JWT"$/,
    );
    // A document naming the key but signed by another: its own signature fails.
    const [header, payload] = documentJws.split(".");
    const forgedJws = `${header}.${payload}.${(await documentOf(other)).split(".")[2]}`;
    const forged = await file("forged.jws", forgedJws);
    const forgedDigest = createHash("sha256").update(forgedJws).digest("hex");
    const forReceipt = await file("x.txt", signReceipt(fields(forgedDigest), keys.signing.secretKey));
    expect((await verify({ receipt: forReceipt, document: forged })).result).toMatchObject({
      valid: false,
      code: "DOCUMENT_SIGNATURE_INVALID",
    });
  });

  it("behind a pool host, another member's document (another key too) is named by its digest, not as a key mismatch", async () => {
    capture();
    const digest = createHash("sha256").update(documentJws).digest("hex");
    const receipt = await file("pool.txt", signReceipt(fields(digest), keys.signing.secretKey));
    // What GET /v1/attestation gave: the document of another member, which has its own keys.
    const memberJws = await documentOf(other);
    const member = await file("member.json", JSON.stringify({ document: memberJws }));
    const memberDigest = createHash("sha256").update(memberJws).digest("hex");
    const { exitCode, result } = await verify({ receipt, document: member });
    expect(exitCode).toBe(1);
    expect(result).toEqual({ valid: false, code: "RECEIPT_MISMATCH", reason: documentMismatch(digest, memberDigest) });
  });

  it("reads --document's header and payload as the verifier does: a member named twice at any depth, or a byte that is not UTF-8, is refused naming the part", async () => {
    capture();
    const [headerPart, payloadPart] = documentJws.split(".") as [string, string];
    const headerText = Buffer.from(headerPart, "base64url").toString();
    const payloadText = Buffer.from(payloadPart, "base64url").toString();
    // Signed by the key the payload carries, so only the reading of the bytes can refuse it.
    const resigned = async (name: string, header: Uint8Array, payload: Uint8Array) => {
      const signingInput = `${Buffer.from(header).toString("base64url")}.${Buffer.from(payload).toString("base64url")}`;
      const signature = nacl.sign.detached(new TextEncoder().encode(signingInput), keys.signing.secretKey);
      const jws = `${signingInput}.${Buffer.from(signature).toString("base64url")}`;
      const digest = createHash("sha256").update(jws).digest("hex");
      const receipt = await file(`${name}.txt`, signReceipt(fields(digest), keys.signing.secretKey));
      return verify({ receipt, document: await file(`${name}.jws`, jws) });
    };
    const once = "expected each member once (JSON.parse would use the last while a reader sees the first); remove one";
    const encode = (text: string) => new TextEncoder().encode(text);
    // JSON.parse reads the last typ (JWT); a reader of the first sees a Cloister document.
    const typTwice = headerText.replace('"typ":', '"typ":"JWT","typ":');
    await expect(resigned("typ-twice", encode(typTwice), encode(payloadText))).rejects.toThrow(
      new UsageError(
        `--document: header: typ appears twice in one object (the second at position ${typTwice.lastIndexOf('"typ"')}): ${once}`,
      ),
    );
    const profileTwice = payloadText.replace('"eat_profile":', '"eat_profile":"x","eat_profile":');
    await expect(resigned("profile-twice", encode(headerText), encode(profileTwice))).rejects.toThrow(
      new UsageError(
        `--document: payload: eat_profile appears twice in one object (the second at position ${profileTwice.lastIndexOf('"eat_profile"')}): ${once}`,
      ),
    );
    const badByte = encode(payloadText.replace('"eat_profile":', '"x":"?","eat_profile":'));
    const at = payloadText.indexOf('"eat_profile":') + 5;
    badByte[at] = 0xff;
    await expect(resigned("bad-byte", encode(headerText), badByte)).rejects.toThrow(
      new UsageError(`--document: payload: expected UTF-8 JSON, found bytes that are not UTF-8 (from offset ${at})`),
    );
    // GET /v1/attestation's JSON naming two documents: the one hashed is not the one a reader sees.
    const body = `{"document":"e30.e30.c2ln","document":${JSON.stringify(documentJws)}}`;
    const receipt = await file("body-twice.txt", signReceipt(fields("d".repeat(64)), keys.signing.secretKey));
    await expect(verify({ receipt, document: await file("body-twice.json", body) })).rejects.toThrow(
      new UsageError(
        `--document: document appears twice in one object (the second at position ${body.lastIndexOf('"document"')}): ${once}`,
      ),
    );
    // The same bytes, each member once: verified.
    expect((await resigned("once", encode(headerText), encode(payloadText))).result).toMatchObject({ valid: true });
  });

  it("a refused document keeps the reader's refusal (AUDIT_DOCUMENT_INVALID) as the usage error's cause", async () => {
    capture();
    const [headerPart, payloadPart] = documentJws.split(".") as [string, string];
    const payload = JSON.parse(Buffer.from(payloadPart, "base64url").toString()) as Record<string, unknown>;
    const signed = async (name: string, payloadText: string) => {
      const signingInput = `${headerPart}.${Buffer.from(payloadText).toString("base64url")}`;
      const signature = nacl.sign.detached(new TextEncoder().encode(signingInput), keys.signing.secretKey);
      const receipt = await file(`${name}.txt`, signReceipt(fields("d".repeat(64)), keys.signing.secretKey));
      const document = await file(`${name}.jws`, `${signingInput}.${Buffer.from(signature).toString("base64url")}`);
      return verify({ receipt, document }).then(
        () => null,
        (error: unknown) => error,
      );
    };
    // Refused as the document is read (a member twice), and as its key is taken (sig_jwk no Ed25519 JWK).
    const twice = JSON.stringify(payload).replace('"eat_profile":', '"eat_profile":"x","eat_profile":');
    const notOkp = JSON.stringify({ ...payload, sig_jwk: { kty: "EC", crv: "Ed25519", x: "AA" } });
    for (const [name, text, message] of [
      ["read", twice, /^--document: payload: eat_profile appears twice/],
      ["key", notOkp, /^--document: sig_jwk: expected an OKP Ed25519 JWK$/],
    ] as const) {
      const error = await signed(name, text);
      expect(error, name).toBeInstanceOf(UsageError);
      expect((error as UsageError).message, name).toMatch(message);
      expect((error as UsageError).cause, name).toBeInstanceOf(AuditDocumentInvalidError);
    }
    // The command's own field checks name the field as the reader's refusals do: "--document: F: …".
    const otherProfile = await signed("profile", JSON.stringify({ ...payload, eat_profile: "x" }));
    expect(otherProfile).toBeInstanceOf(UsageError);
    expect((otherProfile as UsageError).message).toMatch(
      /^--document: eat_profile: expected "[^"]+" \(a Cloister attestation document\), found "x"$/,
    );
    // And GET /v1/attestation's JSON naming two documents: the JSON reader's refusal.
    const receipt = await file("twice.txt", signReceipt(fields("d".repeat(64)), keys.signing.secretKey));
    const body = await file("twice.json", `{"document":"e30.e30.c2ln","document":${JSON.stringify(documentJws)}}`);
    const error = await verify({ receipt, document: body }).catch((e: unknown) => e);
    expect((error as UsageError).cause).toBeInstanceOf(DuplicateMemberError);
  });

  it("--answer-file: hashes the file's bytes, so valid UTF-8 matches and invalid UTF-8 matches nothing", async () => {
    capture();
    const text = "Réponse: a\uFFFDb ✓";
    const receipt = await file("a.txt", signReceipt(fields("d".repeat(64), text), keys.signing.secretKey));
    const good = await file("answer.txt", text);
    expect((await verify({ receipt, answerFile: good })).result).toMatchObject({ valid: true, answerChecked: true });
    // The same text with an invalid byte where the U+FFFD is: read as UTF-8, it would decode to `text`.
    const bytes = Buffer.concat([Buffer.from("Réponse: a"), Buffer.from([0xff]), Buffer.from("b ✓")]);
    expect(bytes.toString("utf8")).toBe(text);
    const invalid = await file("invalid.txt", bytes);
    // Both digests shown (of a public answer: digests, never its text).
    expect((await verify({ receipt, answerFile: invalid })).result).toEqual({
      valid: false,
      code: "RECEIPT_MISMATCH",
      reason: `receipt answerHash: expected the SHA-256 of --answer-file, ${textHash(bytes)}, found ${textHash(text)}`,
    });
    // A final line break the answer does not have (jq -r, an editor) is not the answer, and is named.
    const withLineBreak = await file("answer-nl.txt", `${text}\n`);
    expect((await verify({ receipt, answerFile: withLineBreak })).result).toEqual({
      valid: false,
      code: "RECEIPT_MISMATCH",
      reason: `receipt answerHash: expected the SHA-256 of --answer-file, ${textHash(`${text}\n`)}, found ${textHash(text)} (the file without its final line break matches: save the answer's exact text, e.g. jq -j .text answer.json)`,
    });
  });

  it("reads each file to a bound, and refuses a larger one by its size without reading it whole", async () => {
    capture();
    const receipt = await file("bounded.txt", signReceipt(fields("d".repeat(64)), keys.signing.secretKey));
    // Sparse files one byte past each bound: all zero bytes, none of them written out.
    const past = async (name: string, bytes: number) => {
      const path = await file(name, "");
      await truncate(path, bytes + 1);
      return path;
    };
    const MiB = 1024 * 1024;
    const answer = await past("huge-answer.txt", 64 * MiB);
    await expect(verify({ receipt, answerFile: answer })).rejects.toThrow(
      new UsageError(
        `--answer-file ${answer}: expected at most ${64 * MiB} bytes (an answer of at most 1048576 tokens, the most a manifest lets maxTokens be), found more`,
      ),
    );
    const document = await past("huge-document.jws", 4 * MiB);
    await expect(verify({ receipt, document })).rejects.toThrow(
      new UsageError(`--document ${document}: expected at most ${4 * MiB} bytes (an attestation document), found more`),
    );
    const bigReceipt = await past("huge-receipt.txt", 64 * MiB);
    await expect(verify({ receipt: bigReceipt })).rejects.toThrow(
      new UsageError(
        `--receipt ${bigReceipt}: expected at most ${64 * MiB} bytes (a receipt line, or cloister chat --json's output), found more`,
      ),
    );
    // At the bound, read and checked as before: the answer's bytes are hashed.
    const atBound = await file("at-bound.txt", "");
    await truncate(atBound, 64 * MiB);
    expect((await verify({ receipt, answerFile: atBound })).result).toMatchObject({
      valid: false,
      code: "RECEIPT_MISMATCH",
    });
  });

  it("reads --receipt and --document as strict UTF-8: a byte that is not UTF-8 is refused, naming the option, the file and the byte", async () => {
    capture();
    const digest = createHash("sha256").update(documentJws).digest("hex");
    const line = signReceipt(fields(digest), keys.signing.secretKey);
    // cloister chat --json output with a 0xff byte in a field the check does not read: decoded
    // loosely (U+FFFD) it verified, though its bytes are not the ones a reader of the file sees.
    const chat = Buffer.concat([
      Buffer.from(`{"receipt":${JSON.stringify(line)},"text":"caf`),
      Buffer.of(0xff),
      Buffer.from('"}'),
    ]);
    const receipt = await file("latin1-chat.json", chat);
    await expect(verify({ receipt })).rejects.toThrow(
      new UsageError(
        `--receipt ${receipt}: expected UTF-8 text, found a byte that is not UTF-8 (byte ${chat.indexOf(0xff) + 1} of the file)`,
      ),
    );
    // GET /v1/attestation's JSON with such a byte beside the document: decoded loosely, taken.
    const body = Buffer.concat([
      Buffer.from(`{"document":${JSON.stringify(documentJws)},"note":"`),
      Buffer.of(0xff),
      Buffer.from('"}\n'),
    ]);
    const document = await file("latin1-document.json", body);
    const good = await file("strict-good.txt", line);
    await expect(verify({ receipt: good, document })).rejects.toThrow(
      new UsageError(
        `--document ${document}: expected UTF-8 text, found a byte that is not UTF-8 (byte ${body.indexOf(0xff) + 1} of the file)`,
      ),
    );
    // UTF-8 as it should be: taken as before.
    expect(
      (await verify({ receipt: good, document: await file("strict-document.jws", `${documentJws}\n`) })).result,
    ).toMatchObject({
      valid: true,
      documentDigest: digest,
    });
  });
});
