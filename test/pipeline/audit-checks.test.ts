/**
 * Each check of the audit verifier (records and checkpoints) on its own: a line that breaks only
 * that check, signed where the check runs after the signature, so that dropping or loosening any
 * one check makes a test here fail (found by mutation testing of enclave/pipeline/audit.ts).
 */
import { sha256 } from "@noble/hashes/sha2.js";
import nacl from "tweetnacl";
import { describe, expect, it } from "vitest";
import {
  canonicalJson,
  checkAuditCheckpoint,
  parseAuditPublicKeyHex,
  verifyAuditLog,
} from "../../enclave/pipeline/audit.ts";
import { makeWriter, resignRecord, sampleEntries, seededKeyPair, writeLog } from "./helpers.ts";

const KEYS = seededKeyPair(7);
const OTHER = seededKeyPair(8);
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const utf8 = (s: string) => new TextEncoder().encode(s);

type Line = { record: Record<string, unknown>; sig: string };
const parse = (line: string) => JSON.parse(line) as Line;
const hashOf = (record: Record<string, unknown>) => hex(sha256(utf8(canonicalJson(record))));

/** A checkpoint line: `checkpoint` signed by the enclave key under `tag` (the checkpoint tag by default). */
function signCheckpoint(checkpoint: Record<string, unknown>, tag = "cloister/audit/checkpoint/v2\0"): string {
  const sig = nacl.sign.detached(utf8(`${tag}${canonicalJson(checkpoint)}`), KEYS.secretKey);
  return canonicalJson({ checkpoint, sig: hex(sig) });
}

function failure(lines: readonly string[], options = {}) {
  const result = verifyAuditLog(lines, KEYS.publicKey, options);
  if (result.ok) throw new Error("expected the log to fail verification");
  return result.error;
}

describe("verifyAuditLog: which chain a bad-signature line fits", () => {
  const lines = writeLog(4);

  it("content from another history at the right seq, followed by its own successor → AUDIT_RECORD_ALTERED", () => {
    // Line 1 keeps seq 1 but names another predecessor; line 2 chains to line 1's content. The
    // content fits the chain ahead of it, not the one behind it: altered, not merely re-signed.
    const x = resignRecord(lines[1] as string, OTHER.secretKey, (r) => (r.prevHash = "0".repeat(64)));
    const y = resignRecord(lines[2] as string, OTHER.secretKey, (r) => (r.prevHash = hashOf(x.record)));
    expect(failure([lines[0] as string, x.line, y.line])).toMatchObject({ code: "AUDIT_RECORD_ALTERED", index: 1 });
  });

  it("content at another seq that names the right predecessor, followed by its successor → AUDIT_RECORD_ALTERED", () => {
    const x = resignRecord(lines[2] as string, OTHER.secretKey, (r) => (r.seq = 7));
    const y = resignRecord(lines[3] as string, OTHER.secretKey, (r) => (r.prevHash = hashOf(x.record)));
    expect(failure([lines[0] as string, lines[1] as string, x.line, y.line])).toMatchObject({
      code: "AUDIT_RECORD_ALTERED",
      index: 2,
    });
  });
});

describe("verifyAuditLog: a signed record of an earlier seq", () => {
  it("repeating the earlier record → DUPLICATED; another record of that seq (another history) → REORDERED", () => {
    const a = writeLog(4);
    const fork = makeWriter(); // the same key, another history
    const b = sampleEntries(2, "fork").map((e) => fork.record(e).line);
    expect(parse(b[1] as string).record.seq).toBe(1);
    expect(failure([...a.slice(0, 3), a[1] as string])).toMatchObject({ code: "AUDIT_RECORD_DUPLICATED", index: 3 });
    expect(failure([...a.slice(0, 3), b[1] as string])).toMatchObject({ code: "AUDIT_RECORD_REORDERED", index: 3 });
  });
});

const TIME_EXPECTED = "checkpoint time: expected an ISO-8601 UTC time (YYYY-MM-DDTHH:MM:SS.sssZ)";

describe("checkAuditCheckpoint: each field of a signed checkpoint is checked", () => {
  const writer = makeWriter();
  writeLog(2, writer);
  const good = (JSON.parse(writer.checkpoint(new Uint8Array(16).fill(1))) as { checkpoint: Record<string, unknown> })
    .checkpoint;

  it("the writer signs checkpoints under their own tag: not the record's, not the genesis', not a receipt's", () => {
    const line = writer.checkpoint();
    const { checkpoint, sig } = JSON.parse(line) as { checkpoint: Record<string, unknown>; sig: string };
    const signedUnder = (tag: string) =>
      nacl.sign.detached.verify(utf8(`${tag}${canonicalJson(checkpoint)}`), Buffer.from(sig, "hex"), KEYS.publicKey);
    expect(signedUnder("cloister/audit/checkpoint/v2\0")).toBe(true);
    expect(checkAuditCheckpoint(signCheckpoint(good), KEYS.publicKey)).toMatchObject({ ok: true });
    for (const tag of ["cloister/audit/record/v1\0", "cloister/audit/genesis/v1\0", "cloister/receipt/v1\0", ""]) {
      expect(checkAuditCheckpoint(signCheckpoint(good, tag), KEYS.publicKey)).toMatchObject({
        ok: false,
        problem: "signature",
      });
    }
  });

  it.each([
    ["count negative", { count: -1 }, "checkpoint count: expected a non-negative integer, found -1"],
    [
      "count a string",
      { count: "2" },
      "checkpoint count: expected a non-negative integer, found a string of 1 character",
    ],
    [
      "lastRecordHash short",
      { lastRecordHash: "ab" },
      "checkpoint lastRecordHash: expected 64 hex characters, found a string of 2 characters",
    ],
    [
      "lastRecordHash upper-case",
      { lastRecordHash: "A".repeat(64) },
      "checkpoint lastRecordHash: expected 64 hex characters, found a string of 64 characters",
    ],
    [
      "nonce too short",
      { nonce: "ab".repeat(15) },
      "checkpoint nonce: expected null or 32..128 hex characters, found a string of 30 characters",
    ],
    ["nonce a number", { nonce: 5 }, "checkpoint nonce: expected null or 32..128 hex characters, found 5"],
    ["time not a time", { time: "soon" }, `${TIME_EXPECTED}, found "soon"`],
    ["time a number", { time: 0 }, `${TIME_EXPECTED}, found 0`],
    // Date.parse took each of these; the writer writes only Date#toISOString.
    ["time a year", { time: "1" }, `${TIME_EXPECTED}, found "1"`],
    ["time a date only", { time: "2026-12-04" }, `${TIME_EXPECTED}, found "2026-12-04"`],
    ["time without milliseconds", { time: "2026-12-04T12:00:00Z" }, `${TIME_EXPECTED}, found "2026-12-04T12:00:00Z"`],
    [
      "time with an offset",
      { time: "2026-12-04T12:00:00.000+00:00" },
      `${TIME_EXPECTED}, found "2026-12-04T12:00:00.000+00:00"`,
    ],
    [
      "time in RFC 7231 form",
      { time: "Fri, 04 Dec 2026 12:00:00 GMT" },
      `${TIME_EXPECTED}, found "Fri, 04 Dec 2026 12:00:00 GMT"`,
    ],
    [
      "time with white space",
      { time: " 2026-12-04T12:00:00.000Z" },
      `${TIME_EXPECTED}, found " 2026-12-04T12:00:00.000Z"`,
    ],
    // Of the writer's form, but a day or hour that does not exist (Date.parse moves it on).
    ["time on February 30", { time: "2026-02-30T00:00:00.000Z" }, `${TIME_EXPECTED}, found "2026-02-30T00:00:00.000Z"`],
    ["time at hour 24", { time: "2026-12-04T24:00:00.000Z" }, `${TIME_EXPECTED}, found "2026-12-04T24:00:00.000Z"`],
    ["time a long string", { time: "2026".repeat(20) }, `${TIME_EXPECTED}, found a string of 80 characters`],
    ["time with a line break", { time: "2026\n" }, `${TIME_EXPECTED}, found a string of 5 characters`],
    [
      "an extra field",
      { extra: 1 },
      'checkpoint fields: expected count, lastRecordHash, nonce, time, v, found "count", "extra", "lastRecordHash", "nonce", "time" and 1 more',
    ],
    [
      "a missing field",
      { time: undefined },
      'checkpoint fields: expected count, lastRecordHash, nonce, time, v, found "count", "lastRecordHash", "nonce", "v"',
    ],
  ])("signed, with %s → malformed", (_name, change, message) => {
    const checkpoint = { ...good, ...change } as Record<string, unknown>;
    for (const key of Object.keys(checkpoint)) if (checkpoint[key] === undefined) delete checkpoint[key];
    expect(checkAuditCheckpoint(signCheckpoint(checkpoint), KEYS.publicKey)).toEqual({
      ok: false,
      problem: "malformed",
      message,
    });
  });

  it("a signed checkpoint of a later version → version, whatever its fields", () => {
    expect(checkAuditCheckpoint(signCheckpoint({ ...good, v: 3 }), KEYS.publicKey)).toMatchObject({
      problem: "version",
      message: "checkpoint v: expected 2, found 3",
    });
  });
});

describe("recordShapeProblem: each field of a signed record is checked", () => {
  const lines = writeLog(1);
  const malformed = (mutate: (r: Record<string, unknown>) => void) => {
    const error = failure([resignRecord(lines[0] as string, KEYS.secretKey, mutate).line]);
    expect(error.code).toBe("AUDIT_RECORD_MALFORMED");
    return error.message.replace("audit log line 1: signed record is malformed: ", "");
  };

  it.each([
    [
      "tenant of 201 characters",
      (r: Record<string, unknown>) => (r.tenant = "k".repeat(201)),
      "tenant: expected an API key id of 1..200 characters, found a string of 201 characters",
    ],
    [
      "prevHash not hex",
      (r: Record<string, unknown>) => (r.prevHash = "z".repeat(64)),
      "prevHash: expected 64 hex characters, found 64 characters (not all lower-case hex)",
    ],
    [
      "requestIdHash short",
      (r: Record<string, unknown>) => (r.requestIdHash = "ab"),
      "requestIdHash: expected 64 hex characters, found 2 characters",
    ],
    [
      "attestationDigest missing digits",
      (r: Record<string, unknown>) => (r.attestationDigest = "a".repeat(63)),
      "attestationDigest: expected 64 hex characters, found 63 characters",
    ],
    [
      "responseHmac upper-case",
      (r: Record<string, unknown>) => (r.responseHmac = "A".repeat(64)),
      "responseHmac: expected 64 hex characters or null, found 64 characters (not all lower-case hex)",
    ],
    [
      "piiFindings an object",
      (r: Record<string, unknown>) => (r.piiFindings = {}),
      "piiFindings: expected a list of {entity, count} with distinct known entities and counts ≥ 1, found an empty object",
    ],
    [
      "piiFindings repeating an entity",
      (r: Record<string, unknown>) =>
        (r.piiFindings = [
          { entity: "email", count: 1 },
          { entity: "email", count: 2 },
        ]),
      "piiFindings: expected a list of {entity, count} with distinct known entities and counts ≥ 1, found an array of 2 items",
    ],
    ["seq a string", (r: Record<string, unknown>) => (r.seq = "0"), 'seq: expected a non-negative integer, found "0"'],
  ])("%s", (_name, mutate, message) => {
    expect(malformed(mutate)).toBe(message);
  });

  it("a tenant of 200 characters is within the format (checked only for its shape, then its chain)", () => {
    const long = resignRecord(lines[0] as string, KEYS.secretKey, (r) => (r.tenant = "k".repeat(200)));
    expect(verifyAuditLog([long.line], KEYS.publicKey)).toMatchObject({ ok: true });
  });
});

describe("verifyAuditLog: the hashes kept of verified records", () => {
  it("past the first 64 records, a repeat of record 0 is still told as DUPLICATED", () => {
    const lines = writeLog(70);
    expect(failure([...lines, lines[0] as string])).toMatchObject({ code: "AUDIT_RECORD_DUPLICATED", index: 70 });
  });

  it("in a segment from seq 3: a repeat, and the expected last record hash, are found by seq less the start", () => {
    const all = writeLog(6);
    const start = { seq: 3, prevHash: hashOf(parse(all[2] as string).record) };
    const segment = all.slice(3);
    expect(failure([...segment, all[4] as string], { start })).toMatchObject({
      code: "AUDIT_RECORD_DUPLICATED",
      index: 3,
    });
    const lastRecordHash = hashOf(parse(all[4] as string).record);
    expect(verifyAuditLog(segment, KEYS.publicKey, { start, expect: { count: 5, lastRecordHash } }).ok).toBe(true);
  });
});

describe("parseAuditPublicKeyHex", () => {
  it("refuses a small-order key as the verifier would, before any log is read", () => {
    const identity = `01${"00".repeat(31)}`; // the neutral point: y = 1
    expect(() => parseAuditPublicKeyHex(identity)).toThrow(
      expect.objectContaining({
        code: "AUDIT_KEY_INVALID",
        message: expect.stringContaining("found a small-order point"),
      }),
    );
  });
});
