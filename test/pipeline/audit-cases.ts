/**
 * Logs covering every verdict of `verifyAuditLog` (each code, each way of telling a signature
 * failure apart, truncation and checkpoints, segments), for tests that compare verifiers: the
 * array verifier, the streaming one and the CLI's file reader must give the same result on each.
 */
import nacl from "tweetnacl";
import {
  type AuditRecord,
  type AuditVerifyOptions,
  auditGenesisHash,
  auditRecordHash,
  canonicalJson,
  verifyAuditCheckpoint,
} from "../../enclave/pipeline/audit.ts";
import { makeWriter, sampleEntries, seededKeyPair, writeLog } from "./helpers.ts";

export const CASE_KEYS = seededKeyPair(7);
const OTHER = seededKeyPair(8);
const RECORD_TAG = new TextEncoder().encode("cloister/audit/record/v1\0");

type Line = { record: Record<string, unknown>; sig: string };
const parse = (line: string) => JSON.parse(line) as Line;

function resign(line: string, secretKey: Uint8Array, mutate: (r: Record<string, unknown>) => void = () => {}): string {
  const l = parse(line);
  mutate(l.record);
  const bytes = new Uint8Array([...RECORD_TAG, ...new TextEncoder().encode(canonicalJson(l.record))]);
  return canonicalJson({ record: l.record, sig: Buffer.from(nacl.sign.detached(bytes, secretKey)).toString("hex") });
}

function altered(line: string, mutate: (r: Record<string, unknown>) => void): string {
  const l = parse(line);
  mutate(l.record);
  return canonicalJson(l);
}

export interface AuditCase {
  readonly name: string;
  readonly lines: readonly string[];
  readonly options?: AuditVerifyOptions;
}

export function auditCases(): AuditCase[] {
  const lines = writeLog(6);
  const at = (i: number) => lines[i] as string;
  const cases: AuditCase[] = [
    { name: "valid", lines },
    { name: "empty", lines: [] },
    { name: "removed middle", lines: [...lines.slice(0, 2), ...lines.slice(3)] },
    { name: "removed first", lines: lines.slice(1) },
    { name: "swapped", lines: [at(0), at(1), at(3), at(2), at(4), at(5)] },
    { name: "last moved to front", lines: [at(5), ...lines.slice(0, 5)] },
    { name: "duplicated", lines: [...lines.slice(0, 4), at(1), ...lines.slice(4)] },
    { name: "duplicated last", lines: [...lines, at(5)] },
    { name: "altered v", lines: [at(0), altered(at(1), (r) => (r.v = 2)), ...lines.slice(2)] },
    { name: "altered seq", lines: [at(0), altered(at(1), (r) => (r.seq = 9)), ...lines.slice(2)] },
    { name: "altered tenant", lines: [at(0), altered(at(1), (r) => (r.tenant = "key-mallory")), ...lines.slice(2)] },
    {
      name: "altered prevHash",
      lines: [at(0), altered(at(1), (r) => (r.prevHash = "0".repeat(64))), ...lines.slice(2)],
    },
    { name: "added field", lines: [at(0), at(1), altered(at(2), (r) => (r.note = "x")), ...lines.slice(3)] },
    {
      name: "changed signature",
      lines: [
        at(0),
        at(1),
        canonicalJson({
          ...parse(at(2)),
          sig: `${parse(at(2)).sig.slice(0, -1)}${parse(at(2)).sig.endsWith("0") ? "1" : "0"}`,
        }),
        ...lines.slice(3),
      ],
    },
    { name: "all re-signed by another key", lines: lines.map((l) => resign(l, OTHER.secretKey)) },
    {
      name: "one re-signed by another key",
      lines: [...lines.slice(0, 3), resign(at(3), OTHER.secretKey), ...lines.slice(4)],
    },
    { name: "another enclave's log", lines: writeLog(3, makeWriter(OTHER)) },
    {
      name: "altered and re-signed",
      lines: [at(0), at(1), resign(at(2), OTHER.secretKey, (r) => (r.decision = "allow")), ...lines.slice(3)],
    },
    {
      name: "re-signed, the next line malformed",
      lines: [at(0), at(1), resign(at(2), OTHER.secretKey), "not json", ...lines.slice(3)],
    },
    { name: "malformed: not JSON", lines: [at(0), "not json"] },
    // Where a line stops being JSON, by position in the line (V8's), never its text.
    { name: "malformed: cut short", lines: [at(0), at(1).slice(0, 60)] },
    { name: "malformed: two records on one line", lines: [at(0), `${at(1)}${at(2)}`] },
    { name: "malformed: re-formatted", lines: [JSON.stringify(parse(at(0)), null, 1)] },
    { name: "malformed: no sig", lines: [canonicalJson({ record: parse(at(0)).record })] },
    { name: "malformed: array", lines: ["[]"] },
    { name: "malformed: empty line", lines: [at(0), "", at(1)] },
    { name: "ahead, the expected seq later but malformed after it", lines: [at(0), at(2), "x", at(1)] },
  ];

  // The last line, against a checkpoint or not.
  const writer = makeWriter();
  const four = writeLog(4, writer);
  const c4 = verifyAuditCheckpoint(writer.checkpoint(), CASE_KEYS.publicKey);
  if (c4 === null) throw new Error("checkpoint did not verify");
  const lastAltered = [...four.slice(0, 3), altered(four[3] as string, (r) => (r.tenant = "key-mallory"))];
  const expect4 = { count: 4, lastRecordHash: c4.lastRecordHash };
  cases.push(
    { name: "last line altered, no checkpoint", lines: lastAltered },
    { name: "last line altered, checkpoint", lines: lastAltered, options: { expect: expect4 } },
    { name: "checkpoint reached", lines: four, options: { expect: expect4 } },
    { name: "truncated", lines: four.slice(0, 2), options: { expect: expect4 } },
    { name: "truncated, count only", lines: [], options: { expect: { count: 1 } } },
    { name: "count only, reached", lines: four, options: { expect: { count: 3 } } },
    {
      name: "grown after the checkpoint",
      lines: [...four, writer.record(sampleEntries(5)[4] as never).line],
      options: { expect: expect4 },
    },
    { name: "checkpoint mismatch", lines: four, options: { expect: { count: 4, lastRecordHash: "0".repeat(64) } } },
    {
      name: "empty, genesis checkpoint",
      lines: [],
      options: { expect: { count: 0, lastRecordHash: auditGenesisHash(CASE_KEYS.publicKey) } },
    },
    {
      name: "empty, checkpoint mismatch",
      lines: [],
      options: { expect: { count: 0, lastRecordHash: "0".repeat(64) } },
    },
  );

  // Forks and segments.
  const writerB = makeWriter();
  const fork = sampleEntries(2, "fork").map((e) => writerB.record(e).line);
  cases.push({ name: "forked chain", lines: [at(0), fork[1] as string] });
  const start = { seq: 3, prevHash: auditRecordHash(parse(at(2)).record as unknown as AuditRecord) };
  cases.push(
    { name: "segment", lines: lines.slice(3), options: { start } },
    { name: "segment, first removed", lines: lines.slice(4), options: { start } },
    {
      name: "segment, checkpoint at its start",
      lines: lines.slice(3),
      options: { start, expect: { count: 3, lastRecordHash: start.prevHash } },
    },
  );
  return cases;
}
