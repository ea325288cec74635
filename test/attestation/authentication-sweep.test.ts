/**
 * Authentication sweep over the real evidence (and the simulator's attestation document): every
 * fixture that verifies today is verified again with one byte changed, at every position of each
 * signed region and at a seeded sample of the other bytes (signatures, certificates, padding).
 * Each changed copy must either fail with a typed AttestationError or verify to a result equal in
 * every reported field to the original's (the byte was ignored by design: a PEM line break, a TDX
 * trailer). A byte a signature or a bound hash covers must always fail. Another outcome (a changed
 * field that verifies, a signed byte ignored, a TypeError) is listed with its position and mask.
 *
 * The masks and the sample come from one fixed seed, so every run sweeps the same bytes. "Reported
 * fields" are the whole verified result, read as data, less the copies of the input bytes it keeps
 * beside the parsed fields (`raw`, the TDX `trailing` bytes). The HCL report's hardware-report
 * region is not among them: the verified Azure result leaves it out (on TDX most of the TDREPORT is
 * unauthenticated), and its authenticated fields are the verified SNP report / TD quote.
 */
import { readFileSync } from "node:fs";
import { base64url } from "jose";
import nacl from "tweetnacl";
import { beforeAll, describe, expect, it } from "vitest";
import { type AzureEvidence, parseAzureEvidence } from "../../attestation/azure/evidence.ts";
import { verifyAzureEvidence } from "../../attestation/azure/verify.ts";
import { fromHex, toHex } from "../../attestation/bytes.ts";
import { createNonceAnswer, type EnclaveKeys, verifyAttestationDocument } from "../../attestation/document.ts";
import { AttestationError } from "../../attestation/errors.ts";
import { AMD_ROOTS } from "../../attestation/roots/amd.ts";
import { INTEL_ROOTS } from "../../attestation/roots/intel.ts";
import { parseSnpReport } from "../../attestation/snp/parse.ts";
import { verifySnpReport } from "../../attestation/snp/verify.ts";
import { parseTdxQuote, TDX_HEADER_SIZE } from "../../attestation/tdx/parse.ts";
import { type TdxCollateral, verifyTdxQuote } from "../../attestation/tdx/verify.ts";
import { parseCertificateBytes } from "../../attestation/x509.ts";
import { anchorsForPolicy, type ClientPolicy, manifestCheckForPolicy } from "../../client/policy.ts";
import { simulatedSnpEnclave } from "../helpers/simulated-document.ts";

const F = new URL("../fixtures/attestation/", import.meta.url);
const read = (p: string) => new Uint8Array(readFileSync(new URL(p, F)));
const text = (p: string) => readFileSync(new URL(p, F), "utf8");
const EXPECTED = JSON.parse(text("EXPECTED.json")) as {
  snp: Record<string, { report?: string; endorsementKeyCert?: string; verifyAt: string | null; verdict: string }>;
  tdx: Record<string, { verifyAt: string; verdict: string }>;
  azure_vtpm: Record<string, { report_type?: number; extraData: string }>;
};

const SEED = 0x5eed_2026;

/** mulberry32: a small seeded generator (the sweep needs repeatability, not quality). */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Range = readonly [from: number, to: number];

/** One byte string of the evidence and how it is swept. */
interface Part {
  readonly bytes: Uint8Array;
  /** Swept at every position; a change here must fail (a signature or a bound hash covers it). */
  readonly signed: readonly Range[];
  /** Swept at every position; a change may be ignored, never verify to other fields. */
  readonly whole?: readonly Range[];
  /** How many other positions to sweep (all of them when fewer remain). */
  readonly sample: number;
  /** Every byte is signed, the sampled ones too (a JWS signing input). */
  readonly allSigned?: true;
}

interface Sweep {
  readonly parts: Readonly<Record<string, Part>>;
  /** Verifies the evidence made of these parts; resolves to the verified result. */
  verify(parts: Readonly<Record<string, Uint8Array>>): Promise<unknown>;
}

interface SweepResult {
  /** Positions swept, per part. */
  readonly swept: Record<string, number>;
  readonly rejected: number;
  readonly ignored: number;
  /** Every outcome that breaks the property, as "part@offset^mask: what happened". */
  readonly findings: string[];
}

const inRanges = (i: number, ranges: readonly Range[] = []) => ranges.some(([from, to]) => i >= from && i < to);

function positionsOf(part: Part, random: () => number): number[] {
  const full: number[] = [];
  const rest: number[] = [];
  for (let i = 0; i < part.bytes.length; i++) {
    (inRanges(i, part.signed) || inRanges(i, part.whole) ? full : rest).push(i);
  }
  // A partial Fisher-Yates shuffle picks the sample.
  const count = Math.min(part.sample, rest.length);
  for (let k = 0; k < count; k++) {
    const j = k + Math.floor(random() * (rest.length - k));
    [rest[k], rest[j]] = [rest[j] as number, rest[k] as number];
  }
  return [...full, ...rest.slice(0, count).sort((a, b) => a - b)];
}

/** Copies of input bytes that a verified result keeps beside the fields parsed from them. */
const RAW_COPIES = new Set(["raw", "trailing"]);

/** The verified result as comparable data: bytes as hex, dates as ISO text, maps as entries. */
function reported(value: unknown, seen = new Set<object>()): unknown {
  if (value instanceof Uint8Array) return toHex(value);
  if (typeof value === "bigint") return `${value}n`;
  if (value instanceof Date) return value.toISOString();
  if (value === null || typeof value !== "object") return value;
  if (seen.has(value)) throw new Error("the verified result has a cycle");
  seen.add(value);
  let out: unknown;
  if (value instanceof Map) out = [...value].map(([k, v]) => [reported(k, seen), reported(v, seen)]);
  else if (value instanceof Set) out = [...value].map((v) => reported(v, seen));
  else if (Array.isArray(value)) out = value.map((v) => reported(v, seen));
  else {
    out = Object.fromEntries(
      Object.keys(value)
        .filter((k) => !RAW_COPIES.has(k))
        .sort()
        .map((k) => [k, reported((value as Record<string, unknown>)[k], seen)]),
    );
  }
  seen.delete(value);
  return out;
}

function firstDifference(a: unknown, b: unknown, path = ""): string {
  if (JSON.stringify(a) === JSON.stringify(b)) return "";
  if (a !== null && b !== null && typeof a === "object" && typeof b === "object") {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const d = firstDifference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}.${k}`);
      if (d !== "") return d;
    }
  }
  return `${path || "(result)"}: ${JSON.stringify(a)?.slice(0, 80)} -> ${JSON.stringify(b)?.slice(0, 80)}`;
}

/** Runs at most `width` of `jobs` at once (WebCrypto's thread pool overlaps their work). */
async function inBatches<T>(jobs: (() => Promise<T>)[], width = 8): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < jobs.length; i += width)
    out.push(...(await Promise.all(jobs.slice(i, i + width).map((j) => j()))));
  return out;
}

async function sweep(target: Sweep, seed = SEED): Promise<SweepResult> {
  const random = seeded(seed);
  const original = Object.fromEntries(Object.entries(target.parts).map(([k, p]) => [k, p.bytes]));
  const baseline = reported(await target.verify(original));
  const swept: Record<string, number> = {};
  const jobs: (() => Promise<"rejected" | "ignored" | string>)[] = [];
  for (const [name, part] of Object.entries(target.parts)) {
    const positions = positionsOf(part, random);
    swept[name] = positions.length;
    for (const at of positions) {
      const mask = 1 + Math.floor(random() * 255);
      jobs.push(async () => {
        const bytes = part.bytes.slice();
        bytes[at] = (bytes[at] as number) ^ mask;
        const where = `${name}@0x${at.toString(16)}^0x${mask.toString(16)}`;
        let result: unknown;
        try {
          result = await target.verify({ ...original, [name]: bytes });
        } catch (error) {
          if (error instanceof AttestationError) return "rejected";
          return `${where}: threw ${(error as Error)?.name} (${String((error as Error)?.message).slice(0, 120)})`;
        }
        if (part.allSigned || inRanges(at, part.signed)) return `${where}: verified, though the byte is signed`;
        const difference = firstDifference(baseline, reported(result));
        return difference === "" ? "ignored" : `${where}: verified with ${difference}`;
      });
    }
  }
  const outcomes = await inBatches(jobs);
  return {
    swept,
    rejected: outcomes.filter((o) => o === "rejected").length,
    ignored: outcomes.filter((o) => o === "ignored").length,
    findings: outcomes.filter((o) => o !== "rejected" && o !== "ignored"),
  };
}

/** The sweep's verdict, asserted; the positions per part are returned for the report. */
async function expectAuthenticated(target: Sweep): Promise<SweepResult> {
  const result = await sweep(target);
  expect(result.findings).toEqual([]);
  for (const [name, part] of Object.entries(target.parts)) {
    const full = part.bytes.filter((_, i) => inRanges(i, part.signed) || inRanges(i, part.whole)).length;
    expect(result.swept[name], name).toBe(full + Math.min(part.sample, part.bytes.length - full));
  }
  expect(result.rejected).toBeGreaterThan(0);
  return result;
}

// --- SEV-SNP -----------------------------------------------------------------------------------

const SNP_ROWS = Object.entries(EXPECTED.snp).filter(
  ([, row]) => row.report !== undefined && row.endorsementKeyCert !== undefined && row.verdict.startsWith("accept"),
);

describe("SEV-SNP reports with their VCEK/VLEK, one byte changed", () => {
  it("sweeps the seven accepted reports", () => {
    expect(SNP_ROWS.map(([name]) => name)).toHaveLength(7);
  });

  it.each(SNP_ROWS)("%s", async (_name, row) => {
    const at = new Date(row.verifyAt as string);
    const result = await expectAuthenticated({
      parts: {
        // Body 0x000-0x29F signed; SIGNATURE and the reserved bytes after it sampled.
        report: { bytes: read(`snp/${row.report}`), signed: [[0, 0x2a0]], sample: 96 },
        endorsementKey: { bytes: read(`snp/${row.endorsementKeyCert}`), signed: [], sample: 96 },
      },
      verify: (p) =>
        verifySnpReport({
          report: parseSnpReport(p.report as Uint8Array),
          endorsementKey: parseCertificateBytes(p.endorsementKey as Uint8Array),
          anchors: AMD_ROOTS,
          at,
        }),
    });
    expect(result.swept.report).toBe(0x2a0 + 96);
  });
});

// --- Intel TDX ---------------------------------------------------------------------------------

const TDX_ROWS = Object.entries(EXPECTED.tdx).filter(([file]) => !file.includes("tampered"));

/** Where a quote's signed parts sit: header + TD report body, and the 384-byte QE report. */
function tdxRanges(bytes: Uint8Array): { signed: Range[]; qeReport: Range } {
  const quote = parseTdxQuote(bytes);
  const bodyEnd = quote.signedBytes.length;
  expect(bodyEnd).toBeGreaterThan(TDX_HEADER_SIZE);
  // After the body: signature data length (4), signature (64), attestation key (64), certification
  // data type (2) and size (4), then the QE report.
  const qeStart = bodyEnd + 4 + 64 + 64 + 2 + 4;
  expect(toHex(bytes.subarray(qeStart, qeStart + 384))).toBe(toHex(quote.qeReportBytes));
  return { signed: [[0, bodyEnd]], qeReport: [qeStart, qeStart + 384] };
}

describe("TDX quotes, one byte changed", () => {
  it("sweeps the nine quotes that verify (the four tampered ones do not)", () => {
    expect(TDX_ROWS).toHaveLength(9);
  });

  it.each(TDX_ROWS)("%s", async (file, row) => {
    const bytes = read(file);
    const { signed, qeReport } = tdxRanges(bytes);
    const at = new Date(row.verifyAt);
    await expectAuthenticated({
      parts: { quote: { bytes, signed: [...signed, qeReport], sample: 96 } },
      verify: (p) => verifyTdxQuote({ quote: p.quote as Uint8Array, anchors: INTEL_ROOTS, at }),
    });
  });

  it("quote-v4-trustee.bin with its TCB info, QE identity and CRLs (the collateral sampled too)", async () => {
    const C = "tdx/collateral/";
    const bytes = read("tdx/quote-v4-trustee.bin");
    const { signed, qeReport } = tdxRanges(bytes);
    const at = new Date("2023-07-01T00:00:00Z");
    const tcbChain = text(`${C}tcb-info-issuer-chain.pem`);
    const qeChain = text(`${C}qe-identity-issuer-chain.pem`);
    const collateral = (p: Readonly<Record<string, Uint8Array>>): TdxCollateral => ({
      tcbInfo: { json: p.tcbInfo as Uint8Array, issuerChain: tcbChain },
      qeIdentity: { json: p.qeIdentity as Uint8Array, issuerChain: qeChain },
    });
    const result = await expectAuthenticated({
      parts: {
        quote: { bytes, signed: [...signed, qeReport], sample: 64 },
        tcbInfo: { bytes: read(`${C}tcbinfo-tdx-fmspc-50806f000000-2023-06-18.json`), signed: [], sample: 96 },
        qeIdentity: { bytes: read(`${C}qeidentity-td-qe-2023-06-08.json`), signed: [], sample: 64 },
        pckCrl: { bytes: read(`${C}pck-crl-platform-2023-06-08.der`), signed: [], sample: 48 },
        rootCrl: { bytes: read(`${C}root-ca-crl-2023-04-03.der`), signed: [], sample: 32 },
      },
      verify: async (p) => {
        const v = await verifyTdxQuote({
          quote: p.quote as Uint8Array,
          anchors: INTEL_ROOTS,
          at,
          collateral: collateral(p),
          crls: [p.pckCrl as Uint8Array, p.rootCrl as Uint8Array],
        });
        expect(v.tcbStatus).toBe("UpToDate");
        return v;
      },
    });
    expect(result.swept.tcbInfo).toBe(96);
  });
});

// --- Azure vTPM / HCL --------------------------------------------------------------------------

const AZURE_ROWS = Object.entries(EXPECTED.azure_vtpm).filter(([file]) => file.endsWith(".json"));
const HCL_RUNTIME_DATA = 0x4d4;

function pcrBytes(e: AzureEvidence): Uint8Array {
  const out = new Uint8Array(32 * e.tpmQuote.pcrs.length);
  e.tpmQuote.pcrs.forEach((pcr, i) => {
    out.set(pcr, 32 * i);
  });
  return out;
}

describe("Azure vTPM evidence (HCL report, runtime data, vTPM quote), one byte changed", () => {
  it("sweeps the four evidence files", () => {
    expect(AZURE_ROWS).toHaveLength(4);
  });

  it.each(AZURE_ROWS)("%s", async (file, row) => {
    const evidence = parseAzureEvidence(text(file));
    const snp = evidence.kind === "azure-snp";
    const at = new Date(snp ? "2026-01-01T00:00:00Z" : "2024-01-01T00:00:00Z");
    const runtimeSize = new DataView(evidence.hclReport.buffer, evidence.hclReport.byteOffset).getUint32(
      0x4c0 + 16,
      true,
    );
    const runtimeEnd = HCL_RUNTIME_DATA + runtimeSize;
    const endorsement = (snp ? evidence.vcek : evidence.tdQuote) as Uint8Array;
    const result = await expectAuthenticated({
      parts: {
        hcl: {
          bytes: evidence.hclReport,
          // SNP: the report body (signed by the VCEK); both: the runtime data REPORT_DATA binds.
          signed: snp
            ? [
                [0x20, 0x20 + 0x2a0],
                [HCL_RUNTIME_DATA, runtimeEnd],
              ]
            : [[HCL_RUNTIME_DATA, runtimeEnd]],
          // The headers, and (TDX) the TDREPORT, are read but carry no signature of their own.
          whole: snp
            ? [
                [0, 0x20],
                [0x4c0, HCL_RUNTIME_DATA],
              ]
            : [
                [0, 0x20 + 1024],
                [0x4c0, HCL_RUNTIME_DATA],
              ],
          sample: 96,
        },
        tpmMessage: { bytes: evidence.tpmQuote.message, signed: [[0, evidence.tpmQuote.message.length]], sample: 0 },
        tpmSignature: { bytes: evidence.tpmQuote.signature, signed: [], sample: 48 },
        pcrs: { bytes: pcrBytes(evidence), signed: [], sample: 96 },
        endorsement: { bytes: endorsement, signed: [], sample: 96 },
      },
      verify: (p) => {
        const pcrs = p.pcrs as Uint8Array;
        return verifyAzureEvidence({
          evidence: {
            ...evidence,
            hclReport: p.hcl as Uint8Array,
            tpmQuote: {
              message: p.tpmMessage as Uint8Array,
              signature: p.tpmSignature as Uint8Array,
              pcrs: evidence.tpmQuote.pcrs.map((_, i) => pcrs.subarray(32 * i, 32 * i + 32)),
            },
            vcek: snp ? (p.endorsement as Uint8Array) : null,
            tdQuote: snp ? null : (p.endorsement as Uint8Array),
          },
          at,
          expectedNonce: fromHex(row.extraData),
          snpAnchors: AMD_ROOTS,
          tdxAnchors: INTEL_ROOTS,
        });
      },
    });
    expect(result.swept.tpmMessage).toBe(evidence.tpmQuote.message.length);
  });
});

// --- the simulator's attestation document (JOSE) -----------------------------------------------

describe("the simulator's attestation document, one byte of its protected header or payload changed", () => {
  const NOW = new Date("2026-06-01T12:00:00Z");
  const MEASUREMENT = new Uint8Array(48).fill(0x5a);
  let keys: EnclaveKeys;
  let document: string;
  let simPolicy: ClientPolicy;

  beforeAll(async () => {
    const random = seeded(SEED);
    const seed = (n: number) => Uint8Array.from({ length: n }, () => Math.floor(random() * 256));
    keys = { signing: nacl.sign.keyPair.fromSeed(seed(32)), sealing: nacl.box.keyPair.fromSecretKey(seed(32)) };
    ({ document, policy: simPolicy } = await simulatedSnpEnclave({ keys, now: NOW, measurement: MEASUREMENT }));
  }, 120_000);

  async function verifyUnder(policy: ClientPolicy, jws: string) {
    const nonce = new Uint8Array(32).fill(7);
    // The enclave answers for whatever document it is asked about: only the document is changed.
    const answer = await createNonceAnswer({ keys, document: jws, nonce, now: NOW });
    return verifyAttestationDocument(jws, {
      policy: policy.attestation,
      anchors: await anchorsForPolicy(policy),
      manifest: manifestCheckForPolicy(policy),
      at: NOW,
      nonce: { value: nonce, answer },
      maxClockSkewSeconds: 120,
    });
  }

  it("is refused (typed) under the simulator policy, and under the default policy before and after", async () => {
    const [header, payload, signature] = document.split(".") as [string, string, string];
    const defaultPolicy: ClientPolicy = {
      ...simPolicy,
      attestation: { ...simPolicy.attestation, trustSimulator: false },
    };
    expect(await verifyUnder(simPolicy, document)).toMatchObject({ simulated: true });
    const unchanged = await verifyUnder(defaultPolicy, document).catch((e: unknown) => e);
    expect(unchanged).toMatchObject({ code: "ROOT_NOT_TRUSTED", stage: "verify" });
    const result = await expectAuthenticated({
      parts: {
        header: { bytes: base64url.decode(header), signed: [[0, base64url.decode(header).length]], sample: 0 },
        payload: { bytes: base64url.decode(payload), signed: [], sample: 512, allSigned: true },
      },
      verify: async (p) => {
        const jws = `${base64url.encode(p.header as Uint8Array)}.${base64url.encode(p.payload as Uint8Array)}.${signature}`;
        // Refused by default (trustSimulator: false), whatever the change; an untyped error is a finding.
        await verifyUnder(defaultPolicy, jws).then(
          () => {
            throw new Error("a simulated document verified under the default policy");
          },
          (error: unknown) => {
            if (!(error instanceof AttestationError)) throw error;
          },
        );
        return verifyUnder(simPolicy, jws);
      },
    });
    expect(result.rejected).toBe(result.swept.header! + result.swept.payload!);
  });
});
