import { sha256 } from "@noble/hashes/sha2.js";
import nacl from "tweetnacl";
import { describe, expect, it } from "vitest";
import {
  type AuditEntry,
  type AuditRecord,
  AuditWriter,
  auditCommitment,
  auditGenesisHash,
  auditRecordHash,
  auditRequestIdHash,
  canonicalJson,
  checkAuditCheckpoint,
  parseAuditPublicKeyHex,
  verifyAuditCheckpoint,
  verifyAuditLog,
} from "../../enclave/pipeline/audit.ts";
import type { PiiFinding } from "../../enclave/pipeline/pii.ts";
import { MAX_REDACTION_COUNT } from "../../sealed/frames.ts";
import {
  ATTESTATION_DIGEST,
  fixedClock,
  MODEL_SHA256,
  makeWriter,
  resignRecord,
  sampleEntries,
  seededKeyPair,
  writeLog,
} from "./helpers.ts";

const KEYS = seededKeyPair(7);
const OTHER = seededKeyPair(8);
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

type Line = { record: Record<string, unknown>; sig: string };
const parse = (line: string) => JSON.parse(line) as Line;
const serialise = (l: Line) => canonicalJson(l);

const resign = (line: string, secretKey: Uint8Array, mutate?: (r: Record<string, unknown>) => void): string =>
  resignRecord(line, secretKey, mutate).line;

describe("canonical JSON", () => {
  it("sorts keys, drops whitespace and refuses non-integers", () => {
    expect(canonicalJson({ b: [1, { d: null, c: "x\n" }], a: true })).toBe('{"a":true,"b":[1,{"c":"x\\n","d":null}]}');
    expect(() => canonicalJson({ a: 1.5 })).toThrow();
    expect(() => canonicalJson({ a: undefined })).toThrow();
  });
});

describe("AuditWriter", () => {
  it("writes a chain that verifies, from the key-bound genesis, seq 0..n-1", () => {
    const lines = writeLog(8);
    const result = verifyAuditLog(lines, KEYS.publicKey);
    expect(result.ok).toBe(true);
    expect(result.records.map((r) => r.seq)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    const records = result.records;
    expect(records[0]?.prevHash).toBe(auditGenesisHash(KEYS.publicKey));
    for (let i = 1; i < records.length; i += 1) {
      expect(records[i]?.prevHash).toBe(auditRecordHash(records[i - 1] as AuditRecord));
      expect(records[i]?.prevHash).toBe(hex(sha256(new TextEncoder().encode(canonicalJson(records[i - 1])))));
    }
    if (result.ok) expect(result.lastRecordHash).toBe(auditRecordHash(records[7] as AuditRecord));
    expect(auditGenesisHash(KEYS.publicKey)).not.toBe(auditGenesisHash(OTHER.publicKey));
  });

  it("records hashes, decisions and counts with the documented fields", () => {
    const writer = makeWriter();
    const { record, line, opening } = writer.record(sampleEntries(1)[0] as never);
    expect(Object.keys(record).sort()).toEqual(
      [
        "attestationDigest",
        "blockedBy",
        "decision",
        "error",
        "modelSha256",
        "piiFindings",
        "prevHash",
        "promptHmac",
        "requestIdHash",
        "responseHmac",
        "ruleId",
        "seq",
        "tenant",
        "time",
        "usage",
        "v",
      ].sort(),
    );
    expect(record).toMatchObject({
      v: 1,
      seq: 0,
      time: "2026-01-02T03:04:05.000Z",
      tenant: "key-alpha",
      decision: "allow",
      blockedBy: null,
      piiFindings: [{ entity: "email", count: 2 }],
      usage: { promptTokens: 12, completionTokens: 30 },
      modelSha256: MODEL_SHA256,
      attestationDigest: ATTESTATION_DIGEST,
      requestIdHash: auditRequestIdHash("00000000000000000000000000000001"),
    });
    expect(record.promptHmac).toBe(auditCommitment(opening, "prompt", "prompt 0 plain"));
    expect(record.responseHmac).toBe(auditCommitment(opening, "response", "answer 0 plain"));
    expect(line).toBe(canonicalJson({ record, sig: parse(line).sig }));
    // Golden: the format is stable for fixed keys, clock and commitment key.
    expect(hex(sha256(new TextEncoder().encode(line)))).toBe(
      "6caac884ebb0ec0ea05545044296d47f7748b74cae2deaccdae5d0ac9f160375",
    );
  });

  it("keyed commitments: a host cannot confirm a guessed prompt by hashing it", () => {
    const writer = makeWriter();
    const { record, opening } = writer.record(sampleEntries(1)[0] as never);
    const plain = hex(sha256(new TextEncoder().encode("prompt 0 plain")));
    expect(record.promptHmac).not.toBe(plain);
    expect(record.promptHmac).not.toBe(auditCommitment(new Uint8Array(32), "prompt", "prompt 0 plain"));
    expect(auditCommitment(opening, "prompt", "prompt 0 other")).not.toBe(record.promptHmac);
    // Another boot (another commitment key) commits differently to the same prompt.
    const other = new AuditWriter({
      signingSecretKey: KEYS.secretKey,
      modelSha256: MODEL_SHA256,
      attestationDigest: ATTESTATION_DIGEST,
      settings: { recordPromptHash: true, recordResponseHash: true },
      now: fixedClock(),
      commitmentKey: new Uint8Array(32).fill(10),
    });
    expect(other.record(sampleEntries(1)[0] as never).record.promptHmac).not.toBe(record.promptHmac);
  });

  it("recordPromptHash/recordResponseHash false record null", () => {
    const writer = makeWriter(KEYS, { recordPromptHash: false, recordResponseHash: false });
    const { record } = writer.record(sampleEntries(1)[0] as never);
    expect(record.promptHmac).toBeNull();
    expect(record.responseHmac).toBeNull();
  });

  it("keeps its own copy of the PII findings: a caller changing its list afterwards changes no record", () => {
    const writer = makeWriter();
    const piiFindings: { -readonly [K in keyof PiiFinding]: PiiFinding[K] }[] = [{ entity: "email", count: 2 }];
    const entry = { ...(sampleEntries(1)[0] as AuditEntry), piiFindings };
    const { record, line } = writer.record(entry);
    piiFindings.push({ entity: "phone", count: 1 });
    (piiFindings[0] as { count: number }).count = 9;
    expect(record.piiFindings).toEqual([{ entity: "email", count: 2 }]);
    expect(parse(line).record.piiFindings).toEqual([{ entity: "email", count: 2 }]);
  });

  it("keeps PII counts exact past the final frame's cap (MAX_REDACTION_COUNT), and such a log verifies", () => {
    const writer = makeWriter();
    const counts = [MAX_REDACTION_COUNT + 1, Number.MAX_SAFE_INTEGER];
    const lines = counts.map(
      (count) =>
        writer.record({ ...(sampleEntries(1)[0] as AuditEntry), piiFindings: [{ entity: "email", count }] }).line,
    );
    const result = verifyAuditLog(lines, KEYS.publicKey);
    expect(result.ok).toBe(true);
    expect(result.records.map((r) => r.piiFindings)).toEqual(counts.map((count) => [{ entity: "email", count }]));
  });

  it("no plaintext anywhere: a marker in prompt, answer and request id appears in no line or checkpoint", () => {
    const marker = "ZEBRA-MARKER-91c2";
    const writer = makeWriter();
    const lines = sampleEntries(8, marker).map(
      (e, i) =>
        writer.record({ ...e, requestId: `${marker}-${i}`, prompt: `${marker} secret prompt`, response: marker }).line,
    );
    const text = [...lines, writer.checkpoint()].join("\n");
    expect(text).not.toContain(marker);
    expect(text).not.toContain("ZEBRA");
    expect(text).not.toContain("secret prompt");
    expect(verifyAuditLog(lines, KEYS.publicKey).ok).toBe(true);
  });

  it.each([
    ["blockedBy set on an allow", { blockedBy: "policy" }],
    ["block without blockedBy", { decision: "block", blockedBy: null }],
    ["ruleId that is not a rule id", { ruleId: "Not A Slug" }],
    ["ruleId with a PII block", { decision: "block", blockedBy: "pii", ruleId: "x" }],
    ["negative count", { piiFindings: [{ entity: "email", count: 0 }] }],
    ["unknown entity", { piiFindings: [{ entity: "name", count: 1 }] }],
    ["fractional usage", { usage: { promptTokens: 1.5, completionTokens: 1 } }],
    ["error code in prose", { error: "engine was busy" }],
    ["empty tenant", { tenant: "" }],
  ])("refuses an invalid entry: %s", (_name, change) => {
    const entry = { ...(sampleEntries(1)[0] as object), ...change };
    expect(() => makeWriter().record(entry as never)).toThrow(
      expect.objectContaining({ code: "AUDIT_RECORD_INVALID" }),
    );
  });

  it.each([
    ["tenant", { tenant: "" }, "an API key id of 1..200 characters, found an empty string"],
    [
      "requestId",
      { requestId: "secret-id-".repeat(30) },
      "a string of 1..256 characters, found a string of 300 characters",
    ],
    ["ruleId", { ruleId: "Secret Rule" }, "a manifest rule id or null, found a string of 11 characters"],
    ["usage", { usage: { promptTokens: 1.5, completionTokens: 7 } }, "or null, found an object of 2 fields"],
    ["piiFindings", { piiFindings: [{ entity: "email", count: 0 }] }, "counts ≥ 1, found an array of 1 item"],
    ["prompt", { prompt: 4242 }, "a string, bytes or null, found a value of type number"],
    ["blockedBy", { blockedBy: undefined }, "null (decision is allow), found missing"],
  ])("names what it found in %s by its shape, never its value", (field, change, tail) => {
    const entry = { ...(sampleEntries(1)[0] as object), ...change };
    let message = "";
    try {
      makeWriter().record(entry as never);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(new RegExp(`^audit record field ${field}: expected `));
    expect(message.endsWith(tail)).toBe(true);
    for (const value of ["secret", "Secret", "1.5", "4242"]) expect(message).not.toContain(value);
  });

  it("names a bad digest, nonce or clock reading by its shape, never its value", () => {
    const options = {
      signingSecretKey: KEYS.secretKey,
      modelSha256: MODEL_SHA256,
      attestationDigest: ATTESTATION_DIGEST,
      settings: { recordPromptHash: true, recordResponseHash: true },
    };
    const upper = MODEL_SHA256.toUpperCase();
    expect(() => new AuditWriter({ ...options, modelSha256: upper })).toThrow(
      "audit record field modelSha256: expected 64 lower-case hex characters, found a string of 64 characters",
    );
    expect(() => new AuditWriter({ ...options, attestationDigest: "" })).toThrow(
      "audit record field attestationDigest: expected 64 lower-case hex characters, found an empty string",
    );
    const writer = makeWriter();
    expect(() => writer.checkpoint(new Uint8Array(15).fill(0xab))).toThrow(
      "audit record field checkpoint nonce: expected 16..64 bytes, found 15 bytes",
    );
    const numberClock = new AuditWriter({ ...options, now: () => 1_700_000_000_000 as unknown as Date });
    expect(() => numberClock.checkpoint()).toThrow(
      "audit record field time: expected a valid Date from the clock, found a value of type number",
    );
    const brokenClock = new AuditWriter({ ...options, now: () => new Date(Number.NaN) });
    expect(() => brokenClock.checkpoint()).toThrow(
      "audit record field time: expected a valid Date from the clock, found an invalid Date",
    );
  });

  it("refuses bad keys", () => {
    expect(
      () =>
        new AuditWriter({
          signingSecretKey: new Uint8Array(32),
          modelSha256: MODEL_SHA256,
          attestationDigest: ATTESTATION_DIGEST,
          settings: { recordPromptHash: true, recordResponseHash: true },
        }),
    ).toThrow(expect.objectContaining({ code: "AUDIT_KEY_INVALID" }));
    expect(() => verifyAuditLog([], new Uint8Array(31))).toThrow(
      expect.objectContaining({ code: "AUDIT_KEY_INVALID" }),
    );
    expect(() => parseAuditPublicKeyHex("abcd")).toThrow(expect.objectContaining({ code: "AUDIT_KEY_INVALID" }));
    expect(parseAuditPublicKeyHex(hex(KEYS.publicKey).toUpperCase())).toEqual(KEYS.publicKey);
  });
});

describe("verifyAuditLog: every tampering has its own code", () => {
  const lines = writeLog(6);

  const expectFailure = (ls: readonly string[], code: string, index: number, options = {}) => {
    const result = verifyAuditLog(ls, KEYS.publicKey, options);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error).toMatchObject({ code, index });
    return result;
  };

  it("removed: a middle record, the first record", () => {
    const result = expectFailure([...lines.slice(0, 2), ...lines.slice(3)], "AUDIT_RECORD_REMOVED", 2);
    expect(result.records).toHaveLength(2);
    expectFailure(lines.slice(1), "AUDIT_RECORD_REMOVED", 0);
  });

  it("reordered: two records swapped, the last moved to the front", () => {
    const swapped = [...lines];
    [swapped[2], swapped[3]] = [swapped[3] as string, swapped[2] as string];
    expectFailure(swapped, "AUDIT_RECORD_REORDERED", 2);
    expectFailure([lines[5] as string, ...lines.slice(0, 5)], "AUDIT_RECORD_REORDERED", 0);
    expectFailure([...lines.slice(0, 4), lines[1] as string, ...lines.slice(4)], "AUDIT_RECORD_DUPLICATED", 4);
  });

  it.each([
    ["v", (r: Record<string, unknown>) => (r.v = 2)],
    ["seq", (r: Record<string, unknown>) => (r.seq = 9)],
    ["time", (r: Record<string, unknown>) => (r.time = "2030-01-01T00:00:00.000Z")],
    ["requestIdHash", (r: Record<string, unknown>) => (r.requestIdHash = "b".repeat(64))],
    ["tenant", (r: Record<string, unknown>) => (r.tenant = "key-mallory")],
    ["decision", (r: Record<string, unknown>) => (r.decision = "allow")],
    ["blockedBy", (r: Record<string, unknown>) => (r.blockedBy = null)],
    ["ruleId", (r: Record<string, unknown>) => (r.ruleId = null)],
    ["piiFindings", (r: Record<string, unknown>) => (r.piiFindings = [{ entity: "email", count: 1 }])],
    ["error", (r: Record<string, unknown>) => (r.error = "ENGINE_BUSY")],
    ["promptHmac", (r: Record<string, unknown>) => (r.promptHmac = "c".repeat(64))],
    ["responseHmac", (r: Record<string, unknown>) => (r.responseHmac = "d".repeat(64))],
    ["usage", (r: Record<string, unknown>) => (r.usage = { promptTokens: 1, completionTokens: 1 })],
    ["modelSha256", (r: Record<string, unknown>) => (r.modelSha256 = "e".repeat(64))],
    ["attestationDigest", (r: Record<string, unknown>) => (r.attestationDigest = "f".repeat(64))],
    ["prevHash", (r: Record<string, unknown>) => (r.prevHash = "0".repeat(64))],
  ])("altered field %s of a middle record → AUDIT_RECORD_ALTERED", (_field, mutate) => {
    const l = parse(lines[1] as string); // a policy-blocked record: every field set
    mutate(l.record);
    const altered = [...lines];
    altered[1] = serialise(l);
    expect(altered[1]).not.toBe(lines[1]);
    const result = expectFailure(altered, "AUDIT_RECORD_ALTERED", 1);
    expect(result.records).toHaveLength(1);
  });

  it("an added field or a changed signature", () => {
    const l = parse(lines[2] as string);
    l.record.note = "x";
    expectFailure([...lines.slice(0, 2), serialise(l), ...lines.slice(3)], "AUDIT_RECORD_ALTERED", 2);
    const s = parse(lines[2] as string);
    s.sig = `${s.sig.slice(0, -1)}${s.sig.endsWith("0") ? "1" : "0"}`;
    expectFailure([...lines.slice(0, 2), serialise(s), ...lines.slice(3)], "AUDIT_SIGNATURE_INVALID", 2);
  });

  it("re-signed with another key → AUDIT_SIGNATURE_INVALID", () => {
    expectFailure(
      lines.map((line) => resign(line, OTHER.secretKey)),
      "AUDIT_SIGNATURE_INVALID",
      0,
    );
    const one = [...lines];
    one[3] = resign(lines[3] as string, OTHER.secretKey);
    expectFailure(one, "AUDIT_SIGNATURE_INVALID", 3);
    // A whole log made by another enclave key does not verify under this one either.
    expectFailure(writeLog(3, makeWriter(OTHER)), "AUDIT_SIGNATURE_INVALID", 0);
    expect(verifyAuditLog(writeLog(3, makeWriter(OTHER)), OTHER.publicKey).ok).toBe(true);
  });

  it("altered and re-signed by another key → AUDIT_RECORD_ALTERED", () => {
    const altered = [...lines];
    altered[2] = resign(lines[2] as string, OTHER.secretKey, (r) => (r.decision = "allow"));
    expectFailure(altered, "AUDIT_RECORD_ALTERED", 2);
  });

  it("the last line: altered is told apart only against a checkpoint", () => {
    const writer = makeWriter();
    const ls = writeLog(4, writer);
    const checkpoint = verifyAuditCheckpoint(writer.checkpoint(), KEYS.publicKey);
    expect(checkpoint).toMatchObject({ v: 2, count: 4 });
    const l = parse(ls[3] as string);
    l.record.tenant = "key-mallory";
    const altered = [...ls.slice(0, 3), serialise(l)];
    expectFailure(altered, "AUDIT_SIGNATURE_INVALID", 3);
    expectFailure(altered, "AUDIT_RECORD_ALTERED", 3, {
      expect: { count: 4, lastRecordHash: checkpoint?.lastRecordHash ?? "" },
    });
  });

  it("truncated at the end: detected against a checkpoint, not without one", () => {
    const writer = makeWriter();
    const ls = writeLog(6, writer);
    const checkpoint = verifyAuditCheckpoint(writer.checkpoint(), KEYS.publicKey);
    if (checkpoint === null) throw new Error("checkpoint did not verify");
    const expect_ = { count: checkpoint.count, lastRecordHash: checkpoint.lastRecordHash };
    expect(verifyAuditLog(ls, KEYS.publicKey, { expect: expect_ }).ok).toBe(true);
    expect(verifyAuditLog(ls.slice(0, 4), KEYS.publicKey).ok).toBe(true);
    expectFailure(ls.slice(0, 4), "AUDIT_LOG_TRUNCATED", 4, { expect: expect_ });
    expectFailure([], "AUDIT_LOG_TRUNCATED", 0, { expect: { count: 1 } });
    // A log that grew after the checkpoint still verifies against it.
    ls.push(writer.record(sampleEntries(1)[0] as never).line);
    expect(verifyAuditLog(ls, KEYS.publicKey, { expect: expect_ }).ok).toBe(true);
    expectFailure(ls, "AUDIT_CHECKPOINT_MISMATCH", 5, { expect: { count: 6, lastRecordHash: "0".repeat(64) } });
    // An empty log matches the empty checkpoint (genesis).
    const empty = makeWriter();
    const c0 = verifyAuditCheckpoint(empty.checkpoint(), KEYS.publicKey);
    expect(c0).toMatchObject({ count: 0, lastRecordHash: auditGenesisHash(KEYS.publicKey) });
    expect(
      verifyAuditLog([], KEYS.publicKey, { expect: { count: 0, lastRecordHash: c0?.lastRecordHash ?? "" } }).ok,
    ).toBe(true);
  });

  it("a line that does not verify cannot choose the verdict: a removed record stays removed", () => {
    // Record 2 removed, and a line carrying its seq put after the rest: forged (its content
    // altered), or re-signed by another key. Only a record that verifies is the missing one come
    // later (reordered); these are not, so the verdict stays AUDIT_RECORD_REMOVED.
    const rest = [...lines.slice(0, 2), ...lines.slice(3)];
    const forged = parse(lines[2] as string);
    forged.record.tenant = "key-mallory";
    expectFailure([...rest, serialise(forged)], "AUDIT_RECORD_REMOVED", 2);
    expectFailure([...rest, resign(lines[2] as string, OTHER.secretKey)], "AUDIT_RECORD_REMOVED", 2);
    // The record itself, moved later, is still reordered.
    expectFailure([...rest, lines[2] as string], "AUDIT_RECORD_REORDERED", 2);
  });

  it("a line that does not verify cannot vouch for the content before it", () => {
    // Record 2 altered, and record 3's prevHash rewritten to the altered content's hash (so record
    // 3 no longer verifies either): nothing signed commits to record 2's content, so the verdict
    // must not say the content fits the chain (which reads as "only the signature was replaced").
    const l2 = parse(lines[2] as string);
    l2.record.tenant = "key-mallory";
    const l3 = parse(lines[3] as string);
    l3.record.prevHash = auditRecordHash(l2.record as unknown as AuditRecord);
    const result = expectFailure(
      [lines[0] as string, lines[1] as string, serialise(l2), serialise(l3), ...lines.slice(4)],
      "AUDIT_SIGNATURE_INVALID",
      2,
    );
    if (!result.ok) {
      expect(result.error.message).not.toMatch(/fits the chain/);
      expect(result.error.message).toMatch(/cannot be told apart/);
    }
    // A signature replaced on a record whose successor verifies: the content does fit.
    const replaced = parse(lines[2] as string);
    replaced.sig = `${replaced.sig.slice(0, -1)}${replaced.sig.endsWith("0") ? "1" : "0"}`;
    const fits = expectFailure(
      [lines[0] as string, lines[1] as string, serialise(replaced), ...lines.slice(3)],
      "AUDIT_SIGNATURE_INVALID",
      2,
    );
    if (!fits.ok) expect(fits.error.message).toMatch(/the content fits the chain/);
  });

  it("a signed record from a forked chain (same key, other history) → AUDIT_CHAIN_BROKEN", () => {
    const a = writeLog(2, makeWriter());
    const writerB = makeWriter(); // the same key, but another history
    const bLines = sampleEntries(2, "fork").map((e) => writerB.record(e).line);
    expect(verifyAuditLog(bLines, KEYS.publicKey).ok).toBe(true);
    expectFailure([a[0] as string, bLines[1] as string], "AUDIT_CHAIN_BROKEN", 1);
  });

  it("malformed lines: garbage, re-formatted JSON, missing signature", () => {
    expectFailure([lines[0] as string, "not json"], "AUDIT_RECORD_MALFORMED", 1);
    expectFailure([JSON.stringify(parse(lines[0] as string), null, 1)], "AUDIT_RECORD_MALFORMED", 0);
    expectFailure([canonicalJson({ record: parse(lines[0] as string).record })], "AUDIT_RECORD_MALFORMED", 0);
    expectFailure(["[]"], "AUDIT_RECORD_MALFORMED", 0);
  });

  it("verifies a segment of a rotated log from a given start", () => {
    const all = writeLog(6);
    const start = { seq: 3, prevHash: auditRecordHash(parse(all[2] as string).record as unknown as AuditRecord) };
    expect(verifyAuditLog(all.slice(3), KEYS.publicKey, { start }).ok).toBe(true);
    expectFailure(all.slice(4), "AUDIT_RECORD_REMOVED", 0, { start });
  });

  it("checkpoints verify only under the enclave key and unaltered", () => {
    const writer = makeWriter();
    writeLog(2, writer);
    const line = writer.checkpoint();
    expect(verifyAuditCheckpoint(line, KEYS.publicKey)).toMatchObject({ count: 2 });
    expect(verifyAuditCheckpoint(line, OTHER.publicKey)).toBeNull();
    expect(verifyAuditCheckpoint(line.replace('"count":2', '"count":1'), KEYS.publicKey)).toBeNull();
    expect(verifyAuditCheckpoint("{}", KEYS.publicKey)).toBeNull();
    // A record signature is not a checkpoint signature (domain separation).
    const rec = parse(writeLog(1)[0] as string);
    expect(verifyAuditCheckpoint(canonicalJson({ checkpoint: rec.record, sig: rec.sig }), KEYS.publicKey)).toBeNull();
  });

  it("a checkpoint asked with a nonce verifies only with that nonce: an old one replayed is refused", () => {
    const writer = makeWriter();
    writeLog(1, writer);
    const nonceA = new Uint8Array(32).fill(0xa1);
    const old = writer.checkpoint(nonceA);
    writeLog(2, writer); // more records since: the old head would hide them
    const nonceB = new Uint8Array(32).fill(0xb2);
    const fresh = writer.checkpoint(nonceB);
    expect(verifyAuditCheckpoint(fresh, KEYS.publicKey, { nonce: nonceB })).toMatchObject({
      count: 3,
      nonce: "b2".repeat(32),
    });
    expect(verifyAuditCheckpoint(old, KEYS.publicKey, { nonce: nonceB })).toBeNull();
    expect(verifyAuditCheckpoint(old, KEYS.publicKey, { nonce: nonceA })).toMatchObject({ count: 1 });
    // A checkpoint without a nonce never answers a question that had one.
    expect(verifyAuditCheckpoint(writer.checkpoint(), KEYS.publicKey, { nonce: nonceB })).toBeNull();
    // The nonce is signed: swapping it in the line breaks the signature.
    expect(
      verifyAuditCheckpoint(old.replace("a1".repeat(32), "b2".repeat(32)), KEYS.publicKey, { nonce: nonceB }),
    ).toBeNull();
    // Only the exact canonical line: a duplicate key or an extra member does not verify.
    const parsed = JSON.parse(fresh) as { checkpoint: Record<string, unknown>; sig: string };
    expect(
      verifyAuditCheckpoint(fresh.replace('{"checkpoint":', '{"checkpoint":{},"checkpoint":'), KEYS.publicKey),
    ).toBeNull();
    expect(verifyAuditCheckpoint(JSON.stringify({ ...parsed, extra: 1 }), KEYS.publicKey)).toBeNull();
    expect(verifyAuditCheckpoint(JSON.stringify(parsed, null, 1), KEYS.publicKey)).toBeNull();
    // Too short or too long nonces are refused when signing.
    expect(() => writer.checkpoint(new Uint8Array(15))).toThrow(/checkpoint nonce: expected 16\.\.64 bytes/);
    expect(() => writer.checkpoint(new Uint8Array(65))).toThrow(/checkpoint nonce/);
    expect(verifyAuditCheckpoint(writer.checkpoint(new Uint8Array(16)), KEYS.publicKey)).toMatchObject({ count: 3 });
  });
});

describe("messages say what was found (never content that could be secret)", () => {
  const lines = writeLog(3);
  const failureOf = (ls: readonly string[]) => {
    const result = verifyAuditLog(ls, KEYS.publicKey);
    if (result.ok) throw new Error("expected a failure");
    return result.error;
  };
  /** The message for lines[0] changed by `mutate` and signed again, without its line prefix. */
  const malformed = (mutate: (r: Record<string, unknown>) => void) =>
    failureOf([resign(lines[0] as string, KEYS.secretKey, mutate)]).message.replace(
      "audit log line 1: signed record is malformed: ",
      "",
    );

  it("a line without exactly {record, sig} names its keys", () => {
    const l = parse(lines[0] as string);
    expect(failureOf([canonicalJson({ ...l, extra: 1 })]).message).toBe(
      'audit log line 1: expected exactly the keys record, sig, found "extra", "record", "sig"',
    );
    expect(failureOf(["{}"]).message).toBe("audit log line 1: expected exactly the keys record, sig, found no keys");
  });

  it("a line of JSON that is not an object says what it is", () => {
    expect(failureOf(["[]"]).message).toBe(
      "audit log line 1: expected a JSON object {record, sig}, found an empty array",
    );
    expect(failureOf(["null"]).message).toBe("audit log line 1: expected a JSON object {record, sig}, found null");
    expect(failureOf(["42"]).message).toBe("audit log line 1: expected a JSON object {record, sig}, found 42");
  });

  it("a value canonical JSON does not allow names where it is, what was expected and what was found", () => {
    const l = parse(lines[0] as string) as { record: Record<string, unknown>; sig: string };
    const withRecord = (record: Record<string, unknown>) => JSON.stringify({ record, sig: l.sig });
    expect(failureOf([withRecord({ ...l.record, seq: 1e300 })]).message).toBe(
      "audit log line 1: record.seq: expected a safe integer (canonical JSON), found 1e+300",
    );
    expect(failureOf([withRecord({ ...l.record, usage: { completionTokens: 1, promptTokens: 1.5 } })]).message).toBe(
      "audit log line 1: record.usage.promptTokens: expected a safe integer (canonical JSON), found 1.5",
    );
    expect(failureOf([withRecord({ ...l.record, piiFindings: [{ count: 2 ** 60, entity: "email" }] })]).message).toBe(
      `audit log line 1: record.piiFindings[0].count: expected a safe integer (canonical JSON), found ${2 ** 60}`,
    );
    // Nested past any record's depth: named by the field it is in, not a stack overflow.
    const deep = `{"record":{"x":${"[".repeat(100_000)}${"]".repeat(100_000)}},"sig":"${l.sig}"}`;
    expect(failureOf([deep]).message).toBe(
      "audit log line 1: record.x: expected at most 32 levels of nesting (canonical JSON), found more",
    );
  });

  it("a key from the log is shown without control or format characters (a bidi override, a C1 CSI)", () => {
    const l = parse(lines[0] as string);
    const key = "\u202eevil\u009b[2J";
    expect(failureOf([JSON.stringify({ ...l, [key]: 1 })]).message).toBe(
      'audit log line 1: expected exactly the keys record, sig, found "record", "sig", "\uFFFDevil\uFFFD[2J"',
    );
    expect(failureOf([JSON.stringify({ record: { ...l.record, [key]: 1.5 }, sig: l.sig })]).message).toBe(
      'audit log line 1: record["\uFFFDevil\uFFFD[2J"]: expected a safe integer (canonical JSON), found 1.5',
    );
  });

  it("a log cut before its first record says it holds none, not a seq of -1", () => {
    const truncated = verifyAuditLog([], KEYS.publicKey, { expect: { count: 2 } });
    expect(truncated.ok).toBe(false);
    if (!truncated.ok) {
      expect(truncated.error.message).toBe(
        "audit log end (after line 0): expected 2 records (seq up to 1), found no record",
      );
    }
    const one = verifyAuditLog(lines.slice(0, 1), KEYS.publicKey, { expect: { count: 2 } });
    if (!one.ok)
      expect(one.error.message).toBe(
        "audit log end (after line 1): expected 2 records (seq up to 1), found seq up to 0",
      );
    expect(one.ok).toBe(false);
  });

  it("a signed record with wrong fields names the missing and the extra ones", () => {
    const changed = resign(lines[0] as string, KEYS.secretKey, (r) => {
      delete r.usage;
      delete r.tenant;
      r.note = "x";
    });
    expect(failureOf([changed])).toMatchObject({
      code: "AUDIT_RECORD_MALFORMED",
      message: expect.stringMatching(
        /signed record is malformed: fields: expected .*, found missing tenant, usage; extra "note"$/,
      ),
    });
  });

  it("a signed record of another version names the version, or the size of a string", () => {
    expect(failureOf([resign(lines[0] as string, KEYS.secretKey, (r) => (r.v = 2))]).message).toBe(
      "audit log line 1: signed record is malformed: v: expected 1, found 2",
    );
    const long = resign(lines[0] as string, KEYS.secretKey, (r) => (r.v = "s".repeat(300)));
    expect(failureOf([long]).message).toBe(
      "audit log line 1: signed record is malformed: v: expected 1, found a string of 300 characters",
    );
  });

  it("a signed record's field out of its format names the field, what was expected and what was found", () => {
    expect(malformed((r) => (r.seq = -1))).toBe("seq: expected a non-negative integer, found -1");
    expect(malformed((r) => (r.time = "soon"))).toBe(
      'time: expected an ISO-8601 UTC time (YYYY-MM-DDTHH:MM:SS.sssZ), found "soon"',
    );
    expect(malformed((r) => (r.modelSha256 = "AB"))).toBe(
      "modelSha256: expected 64 hex characters, found 2 characters (not all lower-case hex)",
    );
    expect(malformed((r) => (r.promptHmac = 7))).toBe("promptHmac: expected 64 hex characters or null, found 7");
    expect(malformed((r) => (r.tenant = ""))).toBe('tenant: expected an API key id of 1..200 characters, found ""');
    expect(malformed((r) => (r.decision = "maybe"))).toBe('decision: expected "allow" or "block", found "maybe"');
    expect(malformed((r) => (r.usage = { promptTokens: -1, completionTokens: 0 }))).toBe(
      "usage: expected {promptTokens, completionTokens} non-negative integers or null, found an object with keys completionTokens, promptTokens",
    );
    const l = parse(lines[0] as string);
    const badSig = canonicalJson({ ...l, sig: "ab" });
    expect(failureOf([badSig]).message).toBe("audit log line 1: sig: expected 128 hex characters, found 2 characters");
  });

  it("a signed record the writer could never write (its own rules, checkEntry) does not verify", () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ blockedBy: "pii" }, 'blockedBy: expected null (decision is allow), found "pii"'],
      [{ decision: "block" }, 'blockedBy: expected "policy" or "pii" (decision is block), found null'],
      [{ error: "free text here" }, 'error: expected an error code (A-Z, 0-9, _) or null, found "free text here"'],
      [
        { decision: "block", blockedBy: "policy", error: "ENGINE_FAILED" },
        'error: expected null (decision is block), found "ENGINE_FAILED"',
      ],
      [{ ruleId: "Not A Rule" }, 'ruleId: expected a manifest rule id or null, found "Not A Rule"'],
      [
        { decision: "block", blockedBy: "pii", ruleId: "no-secrets" },
        'ruleId: expected null (blocked for PII), found "no-secrets"',
      ],
    ];
    for (const [changes, message] of cases) {
      // From an allowed record with nothing blocked or failed, then the changes.
      expect(
        malformed((r) => Object.assign(r, { decision: "allow", blockedBy: null, ruleId: null, error: null }, changes)),
      ).toBe(message);
    }
    // Date.parse takes "1" for the year 2001; the writer writes only Date#toISOString.
    expect(malformed((r) => (r.time = "1"))).toBe(
      'time: expected an ISO-8601 UTC time (YYYY-MM-DDTHH:MM:SS.sssZ), found "1"',
    );
    // Of the writer's form, but a day or hour that does not exist: Date.parse moves it on.
    for (const time of ["2026-02-30T00:00:00.000Z", "2026-12-04T24:00:00.000Z"]) {
      expect(malformed((r) => (r.time = time))).toBe(
        `time: expected an ISO-8601 UTC time (YYYY-MM-DDTHH:MM:SS.sssZ), found "${time}"`,
      );
    }
    // Every record the writer writes still verifies (blocked, allowed, failed, with findings).
    expect(verifyAuditLog(writeLog(12), KEYS.publicKey)).toMatchObject({ ok: true });
  });

  it("a checkpoint refused says whether it is malformed, of another version, signed by another key, or for another nonce", () => {
    const writer = makeWriter();
    writeLog(2, writer);
    const good = writer.checkpoint(new Uint8Array(16).fill(1));
    expect(checkAuditCheckpoint(good, KEYS.publicKey)).toMatchObject({ ok: true });
    expect(checkAuditCheckpoint("not json", KEYS.publicKey)).toMatchObject({
      ok: false,
      problem: "malformed",
      message: "expected a checkpoint line (JSON), found 8 characters of other text",
    });
    expect(checkAuditCheckpoint(canonicalJson({ checkpoint: {}, sig: "ab" }), KEYS.publicKey)).toMatchObject({
      problem: "malformed",
      message: "sig: expected 128 lower-case hex characters, found 2 characters",
    });
    const parsed = JSON.parse(good) as { checkpoint: Record<string, unknown>; sig: string };
    const v1 = { ...parsed.checkpoint, v: 1 };
    const v1Tag = new TextEncoder().encode(`cloister/audit/checkpoint/v2\0${canonicalJson(v1)}`);
    const v1Line = canonicalJson({ checkpoint: v1, sig: hex(nacl.sign.detached(v1Tag, KEYS.secretKey)) });
    expect(checkAuditCheckpoint(v1Line, KEYS.publicKey)).toMatchObject({
      problem: "version",
      message: "checkpoint v: expected 2, found 1",
    });
    expect(checkAuditCheckpoint(good, OTHER.publicKey)).toMatchObject({
      problem: "signature",
      message: expect.stringContaining("signed by another key, or altered"),
    });
    expect(checkAuditCheckpoint(good, KEYS.publicKey, { nonce: new Uint8Array(16).fill(2) })).toMatchObject({
      problem: "nonce",
      message: "checkpoint nonce: expected the nonce it was asked with, found another one",
    });
  });
});
