/**
 * TDX quote and collateral verification against the real fixtures: every TDX and tdx_collateral row
 * of EXPECTED.json gets exactly its verdict (signatures, AK binding, chain, CRLs, TCB status, QE
 * identity), the four tampered quotes fail with their own codes, and the explicit rule for the
 * expired Intel TCB Signing certificate is tested in each mode.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { appraise } from "../../attestation/appraise.ts";
import { toHex } from "../../attestation/bytes.ts";
import { AttestationError } from "../../attestation/errors.ts";
import { INTEL_ROOTS } from "../../attestation/roots/intel.ts";
import {
  type CollateralSignerValidity,
  parseIssuerChain,
  parseTdQeIdentity,
  parseTdxTcbInfo,
  topLevelValueRanges,
  verifyTdxCollateralSignature,
} from "../../attestation/tdx/collateral.ts";
import { parseTdxQuote, type TdxTdReportBody } from "../../attestation/tdx/parse.ts";
import { evaluateQeIdentity, evaluateTdxTcb } from "../../attestation/tdx/tcb.ts";
import {
  checkTdxQuoteSignatures,
  isVerifiedTdxQuote,
  type TdxCollateral,
  type VerifyTdxQuoteOptions,
  verifyTdxQuote,
} from "../../attestation/tdx/verify.ts";
import { parseCrl, parsePemCertificates, verifyChain } from "../../attestation/x509.ts";
import { policy, tdxPolicyJson } from "./sim-helpers.ts";

const F = new URL("../fixtures/attestation/", import.meta.url);
const read = (p: string) => new Uint8Array(readFileSync(new URL(p, F)));
const text = (p: string) => readFileSync(new URL(p, F), "utf8");
const C = "tdx/collateral/";

interface TdxRow {
  verifyAt: string;
  verdict: string;
  quoteSignatureValid: boolean;
  qeReportSignatureValid: boolean;
  qeReportDataBindsAttestationKey: boolean;
  pckChainValid: boolean;
  pckRootSha256: string;
  fmspc: string;
  revokedInPckCrl2023: boolean;
  tcbEvaluation: Record<string, [string, string | null, string[] | null]>;
  qeIdentityEvaluation: Record<string, [string, boolean]>;
  qeIsvSvn: number;
}
interface CollateralRow {
  sig_valid?: boolean;
  id?: string;
  version?: number;
  issueDate?: string;
  nextUpdate?: string;
  fmspc?: string | null;
  tcbEvaluationDataNumber?: number;
  sig?: string;
}
const EXPECTED = JSON.parse(readFileSync(new URL("EXPECTED.json", F), "utf8")) as {
  tdx: Record<string, TdxRow>;
  tdx_collateral: Record<string, CollateralRow>;
};
const ROWS = Object.entries(EXPECTED.tdx);
const TCB_CHAIN = text(`${C}tcb-info-issuer-chain.pem`);
const QE_CHAIN = text(`${C}qe-identity-issuer-chain.pem`);
const ROOT = INTEL_ROOTS[0]!.root;
const CRLS = [read(`${C}pck-crl-platform-2023-06-08.der`), read(`${C}root-ca-crl-2023-04-03.der`)];
const PCK_CRL = parseCrl(CRLS[0]!);

const tcbInfo = (file: string) => ({ json: read(`${C}${file}`), issuerChain: TCB_CHAIN });
const qeIdentity = (file: string) => ({ json: read(`${C}${file}`), issuerChain: QE_CHAIN });

/** "CODE message" of the refusal `parse` throws, or "parsed". */
function refusal(parse: () => unknown): string {
  try {
    parse();
    return "parsed";
  } catch (error) {
    return `${(error as AttestationError).code} ${(error as Error).message}`;
  }
}

async function failure(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return "verified";
  } catch (error) {
    if (!(error instanceof AttestationError)) throw error;
    return error.code;
  }
}

const EXPECTED_CODE: Record<string, string> = {
  "tdx/quote-v4-trustee-tampered-mrtd.bin": "TDX_QUOTE_SIGNATURE_INVALID",
  "tdx/quote-v4-trustee-tampered-report-data.bin": "TDX_QUOTE_SIGNATURE_INVALID",
  "tdx/quote-v4-trustee-tampered-signature.bin": "TDX_QUOTE_SIGNATURE_INVALID",
  "tdx/quote-v4-trustee-tampered-qe-report.bin": "TDX_QE_REPORT_SIGNATURE_INVALID",
};

describe("TDX quote verification (EXPECTED.json rows, at verifyAt, no collateral)", () => {
  it.each(ROWS)("%s", async (file, row) => {
    const quote = parseTdxQuote(read(file));
    expect(await checkTdxQuoteSignatures(quote)).toEqual({
      quoteSignatureValid: row.quoteSignatureValid,
      qeReportSignatureValid: row.qeReportSignatureValid,
      qeReportDataBindsAttestationKey: row.qeReportDataBindsAttestationKey,
    });
    const at = new Date(row.verifyAt);
    // The PCK chain verifies to the pinned root on every row (tampered ones included), and no
    // row's PCK leaf is listed in Intel's 2023 PCK Platform CA CRL.
    const links = quote.pckChain.map((cert, i) => ({ cert, role: ["PCK leaf", "PCK CA", "root"][i]! }));
    await expect(verifyChain(links, [ROOT], at)).resolves.toBeUndefined();
    expect(row.pckChainValid).toBe(true);
    expect(PCK_CRL.revokedSerials.has(toHex(quote.pckChain[0].serialNumber))).toBe(row.revokedInPckCrl2023);
    const expectedCode = EXPECTED_CODE[file];
    const valid = row.quoteSignatureValid && row.qeReportSignatureValid && row.qeReportDataBindsAttestationKey;
    expect(valid).toBe(expectedCode === undefined);
    if (expectedCode !== undefined) {
      expect(row.verdict).toMatch(/^reject/);
      expect(await failure(verifyTdxQuote({ quote, anchors: INTEL_ROOTS, at }))).toBe(expectedCode);
      return;
    }
    const v = await verifyTdxQuote({ quote, anchors: INTEL_ROOTS, at });
    expect(isVerifiedTdxQuote(v)).toBe(true);
    expect(row.pckChainValid).toBe(true);
    expect(v.rootSha256).toBe(row.pckRootSha256);
    expect(v.simulated).toBe(false);
    expect(v.fmspc).toBe(row.fmspc);
    expect(v.tcb).toBeNull();
    expect(v.tcbStatus).toBeNull();
    expect(v.debug).toBe(file === "tdx/quote-v4-trustee.bin");
    expect(v.quote.trailingBytes).toBe(quote.trailingBytes);
  });

  it("a quote that fails verification is never marked verified", async () => {
    const quote = parseTdxQuote(read("tdx/quote-v4-trustee.bin"));
    expect(isVerifiedTdxQuote(quote)).toBe(false);
    expect(
      isVerifiedTdxQuote({ ...(await verifyTdxQuote({ quote, anchors: INTEL_ROOTS, at: new Date("2024-01-01") })) }),
    ).toBe(false);
  });
});

describe("TDX TCB and QE identity evaluation (EXPECTED.json rows, signature-checked collateral)", () => {
  // Collateral signatures are checked at their own issueDate under "accept-expired-signer" here, so
  // every row's TCB evaluation is tested regardless of the 2025-05-21 signer expiry; the validity
  // rules themselves are tested separately below.
  const signatureChecked = {
    root: ROOT,
    signerValidity: "accept-expired-signer" as const,
    acceptStaleCollateral: false,
  };
  async function checkedTcbInfo(file: string) {
    const doc = parseTdxTcbInfo(read(`${C}${file}`));
    await verifyTdxCollateralSignature(doc, parseIssuerChain(TCB_CHAIN, file), {
      ...signatureChecked,
      at: doc.issueDate,
    });
    return doc;
  }
  async function checkedQeIdentity(file: string) {
    const doc = parseTdQeIdentity(read(`${C}${file}`));
    await verifyTdxCollateralSignature(doc, parseIssuerChain(QE_CHAIN, file), {
      ...signatureChecked,
      at: doc.issueDate,
    });
    return doc;
  }

  it.each(ROWS)("%s", async (file, row) => {
    const quote = parseTdxQuote(read(file));
    for (const [tcbFile, [status, tcbDate, advisories]] of Object.entries(row.tcbEvaluation)) {
      const evaluation = evaluateTdxTcb(quote, await checkedTcbInfo(tcbFile));
      expect(evaluation.status).toBe(status === "NotSupported/no match" ? "NotSupported" : status);
      expect(evaluation.tcbDate).toBe(tcbDate);
      expect(evaluation.advisoryIds).toEqual(advisories ?? []);
      expect(evaluation.fmspc).toBe(row.fmspc);
    }
    if (Object.keys(row.tcbEvaluation).length === 0) {
      // No TCB info for this FMSPC in the fixtures: every file we have is for another platform.
      for (const tcbFile of [
        "tcbinfo-tdx-fmspc-50806f000000-2023-06-18.json",
        "tcbinfo-tdx-fmspc-00a06d080000-2025-10-27.json",
      ]) {
        expect(() => evaluateTdxTcb(quote, parseTdxTcbInfo(read(`${C}${tcbFile}`)))).toThrow(/fmspc expected/);
      }
    }
    for (const [qeFile, [status, matches]] of Object.entries(row.qeIdentityEvaluation)) {
      expect(matches).toBe(true);
      const evaluation = evaluateQeIdentity(quote.qeReport, await checkedQeIdentity(qeFile));
      expect(evaluation.status).toBe(status);
      expect(evaluation.isvSvn).toBe(row.qeIsvSvn);
    }
  });

  it("a QE report that does not match the identity fails TDX_QE_IDENTITY_MISMATCH", () => {
    const quote = parseTdxQuote(read("tdx/quote-v4-trustee.bin"));
    const doc = parseTdQeIdentity(read(`${C}qeidentity-td-qe-2023-06-08.json`));
    expect(() => evaluateQeIdentity({ ...quote.qeReport, isvProdId: 1 }, doc)).toThrow(/ISVPRODID expected 2, found 1/);
    // Intel's masks cover MISCSELECT and the ATTRIBUTES DEBUG flag (bit 1): a debug-mode QE does not match.
    expect(() => evaluateQeIdentity({ ...quote.qeReport, miscSelect: 1 }, doc)).toThrow(
      "MISCSELECT expected 0x00000000 under mask 0xffffffff, found 0x00000001",
    );
    const debug = quote.qeReport.attributes.slice();
    debug[0] = (debug[0] as number) | 0x02;
    expect(() => evaluateQeIdentity({ ...quote.qeReport, attributes: debug }, doc)).toThrow(
      /ATTRIBUTES expected 11000000000000000000000000000000 under mask fbffffffffffffff0000000000000000, found 1700/,
    );
  });
});

describe("TDX collateral (EXPECTED.json tdx_collateral rows)", () => {
  const json = Object.entries(EXPECTED.tdx_collateral).filter(([f]) => f.endsWith(".json"));
  const crls = Object.entries(EXPECTED.tdx_collateral).filter(([f]) => f.endsWith(".der"));

  it.each(json)("%s", async (file, row) => {
    const isTcb = file.includes("tcbinfo");
    const doc = isTcb ? parseTdxTcbInfo(read(file)) : parseTdQeIdentity(read(file));
    expect(doc.id).toBe(row.id);
    expect(doc.version).toBe(row.version);
    expect(doc.issueDate.toISOString()).toBe(new Date(row.issueDate!).toISOString());
    expect(doc.nextUpdate.toISOString()).toBe(new Date(row.nextUpdate!).toISOString());
    expect(doc.tcbEvaluationDataNumber).toBe(row.tcbEvaluationDataNumber);
    if (doc.kind === "tdx-tcb-info") expect(Buffer.from(doc.fmspc).toString("hex")).toBe(row.fmspc!.toLowerCase());
    else expect(row.fmspc).toBeNull();
    const chain = parseIssuerChain(isTcb ? TCB_CHAIN : QE_CHAIN, file);
    const result = await verifyTdxCollateralSignature(doc, chain, {
      at: doc.issueDate,
      root: ROOT,
      signerValidity: "accept-expired-signer",
      acceptStaleCollateral: false,
    });
    expect(row.sig_valid).toBe(true);
    expect(result.stale).toBe(false);
    expect(result.signerExpired).toBe(doc.issueDate > new Date("2025-05-21T10:50:10Z"));
  });

  it.each(crls)("%s verifies under its issuer", (file, row) => {
    const crl = parseCrl(read(file));
    expect(row.sig).toContain("verify OK");
    const [, last, next] = /lastUpdate=(.*)\nnextUpdate=(.*)\n/.exec(row.sig!)!;
    expect(crl.thisUpdate.toISOString()).toBe(new Date(`${last} UTC`.replace(" GMT UTC", " UTC")).toISOString());
    expect(crl.nextUpdate?.toISOString()).toBe(new Date(`${next} UTC`.replace(" GMT UTC", " UTC")).toISOString());
  });

  it("signatures cover the raw value bytes: whitespace outside the value is fine, re-serialising it is not", async () => {
    const raw = text(`${C}tcbinfo-tdx-fmspc-50806f000000-2023-06-18.json`);
    const parsed = JSON.parse(raw) as { tcbInfo: unknown; signature: string };
    const start = raw.indexOf('{"id"');
    const end = raw.lastIndexOf(',"signature"');
    const spaced = `{\n  "signature": "${parsed.signature}",\n  "tcbInfo" :  ${raw.slice(start, end)}\n}\n`;
    const reserialised = JSON.stringify({ tcbInfo: parsed.tcbInfo, signature: parsed.signature }, null, 1);
    const chain = parseIssuerChain(TCB_CHAIN, "tcb");
    const opts = {
      at: new Date("2023-07-01T00:00:00Z"),
      root: ROOT,
      signerValidity: "strict" as const,
      acceptStaleCollateral: false,
    };
    await expect(verifyTdxCollateralSignature(parseTdxTcbInfo(spaced), chain, opts)).resolves.toMatchObject({
      stale: false,
    });
    expect(await failure(verifyTdxCollateralSignature(parseTdxTcbInfo(reserialised), chain, opts))).toBe(
      "TDX_COLLATERAL_SIGNATURE_INVALID",
    );
    const flipped = raw.replace('"tcbEvaluationDataNumber":15', '"tcbEvaluationDataNumber":16');
    expect(await failure(verifyTdxCollateralSignature(parseTdxTcbInfo(flipped), chain, opts))).toBe(
      "TDX_COLLATERAL_SIGNATURE_INVALID",
    );
  });

  it("names where the scanner stopped as an offset, from 0, as every structure's refusal does", () => {
    const refusal = (body: string) => {
      try {
        topLevelValueRanges(new TextEncoder().encode(body), "TDX TCB info");
      } catch (error) {
        return (error as Error).message;
      }
      return "accepted";
    };
    expect(refusal("{1:2}")).toBe("TDX TCB info: expected a key at offset 1");
    expect(refusal('{"a":}')).toBe("TDX TCB info: expected a value at offset 5");
    expect(refusal('{"a":1 "b":2}')).toBe("TDX TCB info: expected ',' or '}' at offset 7");
  });

  it("refuses duplicate or unexpected top-level keys and wrong ids", () => {
    const raw = text(`${C}tcbinfo-tdx-fmspc-50806f000000-2023-06-18.json`);
    const code = (input: string) => {
      try {
        parseTdxTcbInfo(input);
        return "parsed";
      } catch (error) {
        return (error as AttestationError).code;
      }
    };
    expect(code(raw.replace('{"tcbInfo":', '{"tcbInfo":{},"tcbInfo":'))).toBe("TDX_COLLATERAL_MALFORMED");
    expect(code(raw.replace('{"tcbInfo":', '{"extra":1,"tcbInfo":'))).toBe("TDX_COLLATERAL_MALFORMED");
    expect(code(raw.replace('"id":"TDX"', '"id":"SGX"'))).toBe("TDX_COLLATERAL_UNSUPPORTED");
    expect(code(raw.replace('"tcbType":0', '"tcbType":1'))).toBe("TDX_COLLATERAL_UNSUPPORTED");
    expect(() => parseTdxTcbInfo(raw.replace('"tcbType":0', '"tcbType":7'))).toThrow(
      /^TDX TCB info: tcbType expected 0, found 7$/,
    );
    expect(code(raw.replace('"tcbStatus":"UpToDate"', '"tcbStatus":"Fine"'))).toBe("TDX_COLLATERAL_MALFORMED");
    expect(code(`${raw}x`)).toBe("TDX_COLLATERAL_MALFORMED");
    expect(() => parseTdQeIdentity(raw)).toThrow(AttestationError);
  });

  it("refuses a member named twice inside the signed value, at any depth (JSON.parse reads the last, another reader the first)", () => {
    const tcbInfo = text(`${C}tcbinfo-tdx-fmspc-50806f000000-2023-06-18.json`);
    const qeIdentity = text(`${C}qeidentity-td-qe-2023-06-08.json`);
    const twice = "appears twice in one object";
    const remedy =
      "expected each member once (JSON.parse would use the last while a reader sees the first); remove one";
    const idTwice = tcbInfo.replace('"id":"TDX"', '"id":"SGX","id":"TDX"');
    expect(refusal(() => parseTdxTcbInfo(idTwice))).toBe(
      `TDX_COLLATERAL_MALFORMED TDX TCB info: tcbInfo.id ${twice} (the second at position ${idTwice.indexOf('"id":"TDX"')}): ${remedy}`,
    );
    const statusTwice = qeIdentity.replace('"tcbStatus":"UpToDate"', '"tcbStatus":"Revoked","tcbStatus":"UpToDate"');
    expect(refusal(() => parseTdQeIdentity(statusTwice))).toBe(
      `TDX_COLLATERAL_MALFORMED TD QE identity: enclaveIdentity.tcbLevels.0.tcbStatus ${twice} (the second at position ${statusTwice.indexOf('"tcbStatus":"UpToDate"')}): ${remedy}`,
    );
    // A key twice at the top keeps the scanner's own refusal (the signed range is found by it).
    expect(refusal(() => parseTdxTcbInfo(tcbInfo.replace('{"tcbInfo":', '{"tcbInfo":{},"tcbInfo":')))).toBe(
      'TDX_COLLATERAL_MALFORMED TDX TCB info: key "tcbInfo" appears twice',
    );
    // A byte that is not UTF-8 inside the signed value is refused too (the whole body is decoded strictly).
    const bytes = new TextEncoder().encode(tcbInfo);
    bytes[tcbInfo.indexOf('"TDX"') + 1] = 0xff;
    expect(refusal(() => parseTdxTcbInfo(bytes))).toBe(
      `TDX_COLLATERAL_MALFORMED TDX TCB info: expected UTF-8 JSON, found bytes that are not UTF-8 (from offset ${tcbInfo.indexOf('"TDX"') + 1})`,
    );
  });

  it("names each refusal of the body in its own words, the top level's before a member named twice deeper", () => {
    const tcbInfo = text(`${C}tcbinfo-tdx-fmspc-50806f000000-2023-06-18.json`);
    const idTwice = tcbInfo.replace('"id":"TDX"', '"id":"SGX","id":"TDX"');
    const cases: [string, string | Uint8Array, string][] = [
      ["text after the object", `${tcbInfo}x`, "not valid UTF-8 JSON"],
      ["a body cut short", tcbInfo.slice(0, 100), "not valid UTF-8 JSON"],
      [
        "a byte order mark",
        Uint8Array.from([0xef, 0xbb, 0xbf, ...new TextEncoder().encode(tcbInfo)]),
        "expected a JSON object",
      ],
      ["a JSON array", `[${tcbInfo}]`, "expected a JSON object"],
      [
        "another top-level key",
        idTwice.replace('{"tcbInfo":', '{"extra":1,"tcbInfo":'),
        'unexpected top-level key "extra"',
      ],
      ["no signature", idTwice.replace(/,"signature":"[0-9a-f]+"/, ""), 'missing "signature"'],
      [
        "a signature of 127 hex characters",
        tcbInfo.replace(/("signature":"[0-9a-f]+)[0-9a-f]"/, '$1"'),
        '"signature": expected 128 hex characters (P-256 r||s)',
      ],
    ];
    for (const [name, body, message] of cases) {
      expect(`${name}: ${refusal(() => parseTdxTcbInfo(body))}`).toBe(
        `${name}: TDX_COLLATERAL_MALFORMED TDX TCB info: ${message}`,
      );
    }
  });

  it("reads only its own id and version of each kind, and names what it found", () => {
    const tcbInfo = text(`${C}tcbinfo-tdx-fmspc-50806f000000-2023-06-18.json`);
    const qeIdentity = text(`${C}qeidentity-td-qe-2023-06-08.json`);
    const tcb = (from: string, to: string) => refusal(() => parseTdxTcbInfo(tcbInfo.replace(from, to)));
    const qe = (from: string | RegExp, to: string) => refusal(() => parseTdQeIdentity(qeIdentity.replace(from, to)));
    const unsupported = "TDX_COLLATERAL_UNSUPPORTED";
    expect(tcb('"id":"TDX"', '"id":"SGX"')).toBe(`${unsupported} TDX TCB info: id expected "TDX", found "SGX"`);
    expect(tcb('"version":3', '"version":2')).toBe(`${unsupported} TDX TCB info: version expected 3, found 2`);
    expect(qe('"id":"TD_QE"', '"id":"QE"')).toBe(`${unsupported} TD QE identity: id expected "TD_QE", found "QE"`);
    expect(qe('"version":2', '"version":3')).toBe(`${unsupported} TD QE identity: version expected 2, found 3`);
    // The shared fields are read before the version is compared.
    expect(qe(/"version":2,(.*)"issueDate":"[^"]+"/, '"version":3,$1"issueDate":"x"')).toBe(
      'TDX_COLLATERAL_MALFORMED TD QE identity: issueDate: expected an ISO-8601 UTC time to the second (YYYY-MM-DDTHH:MM:SSZ), found "x"',
    );
  });

  it("takes collateral times only in the forms Intel's PCS writes, and refuses a rolled-over date", () => {
    const tcbInfo = text(`${C}tcbinfo-tdx-fmspc-50806f000000-2023-06-18.json`);
    const qeIdentity = text(`${C}qeidentity-td-qe-2023-06-08.json`);
    const expected = "expected an ISO-8601 UTC time to the second (YYYY-MM-DDTHH:MM:SSZ)";
    const cases: [string, string, string][] = [
      ['"issueDate":"2023-06-18T08:42:58Z"', '"issueDate":"2023-02-30T08:42:58Z"', "issueDate"],
      ['"issueDate":"2023-06-18T08:42:58Z"', '"issueDate":"2023-06-18T24:00:00Z"', "issueDate"],
      ['"nextUpdate":"2023-07-18T08:42:58Z"', '"nextUpdate":"2023-07-18T08:42:60Z"', "nextUpdate"],
      ['"nextUpdate":"2023-07-18T08:42:58Z"', '"nextUpdate":"2023-07-18T08:42:58.5Z"', "nextUpdate"],
      ['"nextUpdate":"2023-07-18T08:42:58Z"', '"nextUpdate":"2023-07-18T08:42:58.000Z"', "nextUpdate"],
      ['"tcbDate":"2023-02-15T00:00:00Z"', '"tcbDate":"2023-02-29T00:00:00Z"', "tcbLevels[0].tcbDate"],
      ['"tcbDate":"2023-02-15T00:00:00Z"', '"tcbDate":"2023-13-01T00:00:00Z"', "tcbLevels[0].tcbDate"],
    ];
    for (const [good, bad, field] of cases) {
      const found = bad.slice(bad.indexOf(':"') + 1);
      expect(tcbInfo.includes(good)).toBe(true);
      expect(refusal(() => parseTdxTcbInfo(tcbInfo.replace(good, bad)))).toBe(
        `TDX_COLLATERAL_MALFORMED TDX TCB info: ${field}: ${expected}, found ${found}`,
      );
    }
    const qeBad = qeIdentity.replace('"tcbDate":"2023-02-15T00:00:00Z"', '"tcbDate":"2023-04-31T00:00:00Z"');
    expect(qeBad).not.toBe(qeIdentity);
    expect(refusal(() => parseTdQeIdentity(qeBad))).toMatch(
      /^TDX_COLLATERAL_MALFORMED TD QE identity: tcbLevels\[0\]\.tcbDate: expected an ISO-8601 UTC time to the second \(YYYY-MM-DDTHH:MM:SSZ\), found "2023-04-31T00:00:00Z"$/,
    );
    // A leap day that exists still parses, to the second.
    const leap = parseTdxTcbInfo(
      tcbInfo.replace('"issueDate":"2023-06-18T08:42:58Z"', '"issueDate":"2024-02-29T23:59:59Z"'),
    );
    expect(leap.issueDate.toISOString()).toBe("2024-02-29T23:59:59.000Z");
  });
});

describe("TDX verification with collateral at verifyAt", () => {
  const base = (file: string, at: string, collateral: TdxCollateral, extra: Partial<VerifyTdxQuoteOptions> = {}) =>
    verifyTdxQuote({ quote: read(file), anchors: INTEL_ROOTS, at: new Date(at), collateral, ...extra });

  it("quote-v4-trustee.bin: accept, UpToDate, QE UpToDate, debug TD, CRLs current and not revoking", async () => {
    const v = await base(
      "tdx/quote-v4-trustee.bin",
      "2023-07-01T00:00:00Z",
      {
        tcbInfo: tcbInfo("tcbinfo-tdx-fmspc-50806f000000-2023-06-18.json"),
        qeIdentity: qeIdentity("qeidentity-td-qe-2023-06-08.json"),
      },
      { crls: CRLS },
    );
    expect(v.tcbStatus).toBe("UpToDate");
    expect(v.tcb?.tcbDate).toBe("2023-02-15T00:00:00Z");
    expect(v.qeIdentity?.status).toBe("UpToDate");
    expect(v.debug).toBe(true);
    expect(v.revocationChecked).toBe(true);
    expect(v.warnings).toEqual([]);
    expect(v.tcbInfo).toMatchObject({ signerExpired: false, stale: false, tcbEvaluationDataNumber: 15 });
  });

  it("quote-v4-spr-e4-gotdxguest.bin: verifies, but no TCB level matches (NotSupported)", async () => {
    const v = await base("tdx/quote-v4-spr-e4-gotdxguest.bin", "2023-07-01T00:00:00Z", {
      tcbInfo: tcbInfo("tcbinfo-tdx-fmspc-50806f000000-2023-06-18.json"),
      qeIdentity: qeIdentity("qeidentity-td-qe-2023-06-08.json"),
    });
    expect(v.tcbStatus).toBe("NotSupported");
    expect(v.tcb?.platform.tcbDate).toBeNull();
    expect(v.quote.trailingBytes).toBe(39);
  });

  it("quote-v5-trustee.bin at 2024-06-01: the 2026 TCB info is not yet valid", async () => {
    expect(
      await failure(
        base(
          "tdx/quote-v5-trustee.bin",
          "2024-06-01T00:00:00Z",
          { tcbInfo: tcbInfo("tcbinfo-tdx-fmspc-90c06f000000-2026-02-01.json") },
          { collateralSignerValidity: "accept-expired-signer" },
        ),
      ),
    ).toBe("COLLATERAL_NOT_YET_VALID");
  });

  it("wrong-FMSPC TCB info fails TDX_FMSPC_MISMATCH", async () => {
    expect(
      await failure(
        base(
          "tdx/quote-v4-trustee.bin",
          "2025-11-01T00:00:00Z",
          { tcbInfo: tcbInfo("tcbinfo-tdx-fmspc-00a06d080000-2025-10-27.json") },
          { collateralSignerValidity: "accept-expired-signer" },
        ),
      ),
    ).toBe("TDX_FMSPC_MISMATCH");
  });

  describe("the expired Intel TCB Signing certificate (notAfter 2025-05-21), each rule", () => {
    const q6 = (mode: CollateralSignerValidity) =>
      base(
        "tdx/quote-v4-trustee-q6.bin",
        "2025-11-01T00:00:00Z",
        {
          tcbInfo: tcbInfo("tcbinfo-tdx-fmspc-00a06d080000-2025-10-27.json"),
          qeIdentity: qeIdentity("qeidentity-td-qe-2025-10-28.json"),
        },
        { collateralSignerValidity: mode },
      );

    it("strict (the default) refuses 2025-10 collateral: COLLATERAL_SIGNER_EXPIRED", async () => {
      expect(await failure(q6("strict"))).toBe("COLLATERAL_SIGNER_EXPIRED");
      expect(
        await failure(
          base("tdx/quote-v4-trustee-q6.bin", "2025-11-01T00:00:00Z", {
            tcbInfo: tcbInfo("tcbinfo-tdx-fmspc-00a06d080000-2025-10-27.json"),
          }),
        ),
      ).toBe("COLLATERAL_SIGNER_EXPIRED");
    });

    it("at-issue-date also refuses collateral issued after the signer expired", async () => {
      expect(await failure(q6("at-issue-date"))).toBe("COLLATERAL_SIGNER_EXPIRED");
    });

    it("accept-expired-signer verifies it, reports OutOfDate (PCESVN 11 < 13) and flags the expired signer", async () => {
      const v = await q6("accept-expired-signer");
      expect(v.tcbStatus).toBe("OutOfDate");
      expect(v.tcb?.tcbDate).toBe("2018-01-04T00:00:00Z");
      expect(v.tcb?.tdxModule).toMatchObject({ id: "TDX_03", status: "UpToDate" });
      expect(v.qeIdentity?.status).toBe("UpToDate");
      expect(v.tcbInfo?.signerExpired).toBe(true);
      expect(v.qeIdentity?.signerExpired).toBe(true);
      expect(v.warnings.join("\n")).toMatch(/TCB info signer certificate .* is expired/);
    });

    it("at-issue-date accepts collateral signed while the signer was valid, verified after it expired", async () => {
      const collateral = { tcbInfo: tcbInfo("tcbinfo-tdx-fmspc-50806f000000-2023-06-18.json") };
      const at = "2025-06-01T00:00:00Z";
      const quote = "tdx/quote-v4-trustee.bin";
      expect(await failure(base(quote, at, collateral, { acceptStaleCollateral: true }))).toBe(
        "COLLATERAL_SIGNER_EXPIRED",
      );
      const v = await base(quote, at, collateral, {
        acceptStaleCollateral: true,
        collateralSignerValidity: "at-issue-date",
      });
      expect(v.tcbStatus).toBe("UpToDate");
      expect(v.tcbInfo).toMatchObject({ stale: true, signerExpired: true });
    });

    it("quote-v5-gotdxguest.bin at 2026-02-15: UpToDate (TDX_01 isvsvn 11) under accept-expired-signer; stale QE identity needs acceptStaleCollateral", async () => {
      const collateral = {
        tcbInfo: tcbInfo("tcbinfo-tdx-fmspc-90c06f000000-2026-02-01.json"),
        qeIdentity: qeIdentity("qeidentity-td-qe-2025-10-28.json"),
      };
      const at = "2026-02-15T00:00:00Z";
      const file = "tdx/quote-v5-gotdxguest.bin";
      expect(await failure(base(file, at, collateral))).toBe("COLLATERAL_SIGNER_EXPIRED");
      expect(await failure(base(file, at, collateral, { collateralSignerValidity: "accept-expired-signer" }))).toBe(
        "COLLATERAL_EXPIRED",
      );
      const v = await base(file, at, collateral, {
        collateralSignerValidity: "accept-expired-signer",
        acceptStaleCollateral: true,
      });
      expect(v.tcbStatus).toBe("UpToDate");
      expect(v.tcb?.tdxModule).toMatchObject({ id: "TDX_01", status: "UpToDate" });
      expect(v.qeIdentity).toMatchObject({ status: "UpToDate", stale: true });
    });
  });
});

describe("TDX verification failures", () => {
  const quote = () => parseTdxQuote(read("tdx/quote-v4-trustee.bin"));
  const at = new Date("2023-07-01T00:00:00Z");

  it("needs at least one trust anchor", async () => {
    expect(await failure(verifyTdxQuote({ quote: quote(), anchors: [], at }))).toBe("TDX_NO_TRUST_ANCHORS");
  });

  it("refuses a chain ending in a root that is not an anchor", async () => {
    const other = parsePemCertificates(text("intel-roots/intel-sgx-pck-platform-ca.pem"))[0]!;
    expect(await failure(verifyTdxQuote({ quote: quote(), anchors: [{ root: other, simulated: false }], at }))).toBe(
      "ROOT_NOT_TRUSTED",
    );
  });

  it("marks evidence verified under a simulated anchor as simulated", async () => {
    const v = await verifyTdxQuote({ quote: quote(), anchors: [{ root: ROOT, simulated: true }], at });
    expect(v.simulated).toBe(true);
  });

  it("checks the PCK leaf validity at the given time", async () => {
    expect(await failure(verifyTdxQuote({ quote: quote(), anchors: INTEL_ROOTS, at: new Date("2031-01-01") }))).toBe(
      "CERT_EXPIRED",
    );
    expect(await failure(verifyTdxQuote({ quote: quote(), anchors: INTEL_ROOTS, at: new Date("2023-01-01") }))).toBe(
      "CERT_NOT_YET_VALID",
    );
  });

  it("QE report data not binding the attestation key fails TDX_QE_BINDING_MISMATCH", async () => {
    // QE auth data starts at 632 + 4 (length) + 134 (sig, AK, cert-data header) + 450 (QE report,
    // its signature, auth size) = 1220; it is outside the PCK-signed QE report, so only the binding breaks.
    const bytes = read("tdx/quote-v4-trustee.bin");
    expect(toHex(parseTdxQuote(bytes).qeAuthData)).toBe(toHex(bytes.subarray(1220, 1252)));
    bytes[1220] = (bytes[1220] as number) ^ 1;
    expect(await checkTdxQuoteSignatures(parseTdxQuote(bytes))).toEqual({
      qeReportSignatureValid: true,
      qeReportDataBindsAttestationKey: false,
      quoteSignatureValid: true,
    });
    expect(await failure(verifyTdxQuote({ quote: bytes, anchors: INTEL_ROOTS, at }))).toBe("TDX_QE_BINDING_MISMATCH");
  });

  it("verifies the raw bytes, not a caller-modified parsed object", async () => {
    const q = quote();
    const forged = { ...q, body: { ...q.body, mrTd: new Uint8Array(48) } };
    const v = await verifyTdxQuote({ quote: forged, anchors: INTEL_ROOTS, at });
    expect(toHex(v.quote.body.mrTd)).toBe(toHex(q.body.mrTd));
  });

  it("CRLs: every non-root certificate needs a current CRL from its issuer", async () => {
    const q = quote();
    expect(await failure(verifyTdxQuote({ quote: q, anchors: INTEL_ROOTS, at, crls: [CRLS[0]!] }))).toBe(
      "TDX_CRL_MISSING",
    );
    const later = new Date("2025-01-01T00:00:00Z");
    expect(await failure(verifyTdxQuote({ quote: q, anchors: INTEL_ROOTS, at: later, crls: CRLS }))).toBe(
      "CRL_EXPIRED",
    );
    const stale = await verifyTdxQuote({
      quote: q,
      anchors: INTEL_ROOTS,
      at: later,
      crls: CRLS,
      acceptStaleCollateral: true,
    });
    expect(stale.revocationChecked).toBe(true);
    expect(stale.warnings).toHaveLength(2);
  });

  it("reads a parsed CRL from its DER, not from the object's fields", async () => {
    // Intel's real 2023 PCK CRL lists 44 serials, none of them ours (EXPECTED: revokedInPckCrl2023 false).
    // A CRL that lists a serial is in sim-tdx-collateral.test.ts (CERT_REVOKED), signed by the simulator.
    const crl = parseCrl(CRLS[0]!);
    const q = quote();
    expect(crl.revokedSerials.size).toBe(44);
    expect(crl.revokedSerials.has(Buffer.from(q.pckChain[0].serialNumber).toString("hex"))).toBe(false);
    const listed = { ...crl, revokedSerials: new Set([Buffer.from(q.pckChain[0].serialNumber).toString("hex")]) };
    // The edited object is not what Intel signed: its fields are not read, so this serial is not revoked.
    const v = await verifyTdxQuote({ quote: q, anchors: INTEL_ROOTS, at, crls: [listed, CRLS[1]!] });
    expect(v.revocationChecked).toBe(true);
  });
});

/** A TDX policy section pinning `b`'s own measurements and attributes, with `overrides`. */
function pinnedTdxSection(b: TdxTdReportBody, overrides: Record<string, unknown>) {
  return tdxPolicyJson(toHex(b.mrSeam), {
    xfam: { allowed: [toHex(b.xfam)] },
    tdAttributes: { allowed: [toHex(b.tdAttributes)] },
    mrtd: [toHex(b.mrTd)],
    rtmrs: b.rtmrs.map((r) => toHex(r)),
    mrconfigid: toHex(b.mrConfigId),
    minimumTeeTcbSvn: toHex(b.teeTcbSvn),
    ...overrides,
  });
}

describe("MRSERVICETD of a real TDX 1.5 quote (quote-v5-trustee.bin, a service TD bound)", () => {
  it("is compared with the policy: refused where none is pinned, accepted where it is", async () => {
    const at = new Date("2024-06-01T00:00:00Z");
    const v = await verifyTdxQuote({ quote: read("tdx/quote-v5-trustee.bin"), anchors: INTEL_ROOTS, at });
    const serviceTd = toHex(v.quote.body.mrServiceTd ?? new Uint8Array(0));
    expect(serviceTd).toMatch(/^383c87d3bbb047b2[0-9a-f]{80}$/);
    const section = (mrservicetd: string) => pinnedTdxSection(v.quote.body, { mrservicetd });
    const options = { now: at, expectedReportData: null };
    const none = appraise(v, policy({ tdx: section("00".repeat(48)), trustSimulator: false }), options);
    expect(none.violations).toEqual([
      { field: "MRSERVICETD", code: "TDX_MRSERVICETD_MISMATCH", expected: "00".repeat(48), found: serviceTd },
    ]);
    expect(appraise(v, policy({ tdx: section(serviceTd), trustSimulator: false }), options).ok).toBe(true);
  });
});

describe("minimumQeSvn and minimumPceSvn on a real quote (quote-v4-trustee-q6.bin: QE ISVSVN 7, PCESVN 11)", () => {
  it("compares the QE report's ISVSVN and the PCK certificate's PCESVN; the header's QE_SVN and PCE_SVN are zero", async () => {
    const at = new Date("2025-11-01T00:00:00Z");
    const v = await verifyTdxQuote({ quote: read("tdx/quote-v4-trustee-q6.bin"), anchors: INTEL_ROOTS, at });
    expect([v.quote.header.qeSvn, v.quote.header.pceSvn]).toEqual([0, 0]);
    const section = (minimums: Record<string, number>) => pinnedTdxSection(v.quote.body, minimums);
    const options = { now: at, expectedReportData: null };
    const met = policy({ tdx: section({ minimumQeSvn: 7, minimumPceSvn: 11 }), trustSimulator: false });
    expect(appraise(v, met, options).violations).toEqual([]);
    // Intel's TCB info of 2025-10-27 for this FMSPC rates PCESVN below 13 OutOfDate.
    const raised = policy({ tdx: section({ minimumQeSvn: 8, minimumPceSvn: 13 }), trustSimulator: false });
    expect(appraise(v, raised, options).violations).toEqual([
      { field: "QE_REPORT.ISVSVN", code: "TDX_QE_SVN_TOO_LOW", expected: ">= 8 (minimumQeSvn)", found: "7" },
      { field: "PCK.PCESVN", code: "TDX_PCE_SVN_TOO_LOW", expected: ">= 13 (minimumPceSvn)", found: "11" },
    ]);
  });
});

describe("a policy built in code without a hardening field (never parsed)", () => {
  it("is refused by appraise, not read as a check not made", async () => {
    const at = new Date("2025-11-01T00:00:00Z");
    const v = await verifyTdxQuote({ quote: read("tdx/quote-v4-trustee-q6.bin"), anchors: INTEL_ROOTS, at });
    const parsed = policy({ tdx: pinnedTdxSection(v.quote.body, { minimumQeSvn: 8 }), trustSimulator: false });
    const options = { now: at, expectedReportData: null };
    expect(appraise(v, parsed, options).ok).toBe(false);
    for (const field of ["minimumQeSvn", "minimumPceSvn", "rejectedAdvisoryIds"] as const) {
      const { [field]: _, ...rest } = parsed.tdx as NonNullable<typeof parsed.tdx>;
      const built = { ...parsed, tdx: rest } as unknown as typeof parsed;
      expect(() => appraise(v, built, options)).toThrow(
        expect.objectContaining({ code: "APPRAISAL_BAD_OPTION", message: expect.stringContaining(`policy ${field}:`) }),
      );
    }
    // A skip without its reason is no skip the parser would take: refused too, not read as a value.
    const reasonless = { ...parsed, tdx: { ...parsed.tdx, minimumQeSvn: { skip: {} } } } as unknown as typeof parsed;
    expect(() => appraise(v, reasonless, options)).toThrow(
      expect.objectContaining({
        code: "APPRAISAL_BAD_OPTION",
        message: expect.stringContaining("policy minimumQeSvn:"),
      }),
    );
  });
});
