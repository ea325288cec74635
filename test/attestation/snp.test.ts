/**
 * SEV-SNP parsing and verification against the real fixtures: every SNP row of EXPECTED.json gets
 * exactly its verdict and its parsed values.
 */
import { generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { toHex } from "../../attestation/bytes.ts";
import { sha512 } from "../../attestation/crypto.ts";
import { AMD_ROOTS, amdRoot } from "../../attestation/roots/amd.ts";
import { parseSnpReport, type SnpTcbVersion, tcbHex } from "../../attestation/snp/parse.ts";
import {
  cachedVcekFetcher,
  decodeSnpEndorsementExtensions,
  kdsVcekUrl,
  VerifiedSnpReport,
  verifySnpReport,
} from "../../attestation/snp/verify.ts";
import { type Certificate, parseCertificateBytes, verifyChain } from "../../attestation/x509.ts";
import { rejection } from "../helpers/attestation.ts";

const F = new URL("../fixtures/attestation/", import.meta.url);
const read = (p: string) => new Uint8Array(readFileSync(new URL(p, F)));
const EXPECTED = JSON.parse(readFileSync(new URL("EXPECTED.json", F), "utf8")) as {
  snp: Record<string, Record<string, unknown>>;
};

interface TcbRow {
  bootloader: number;
  tee: number;
  snp: number;
  microcode: number;
  raw: string;
}
interface SnpRow {
  report: string;
  sha256: string;
  endorsementKeyCert: string;
  verifyAt: string | null;
  verdict: string;
  version: number;
  guestSvn: number;
  policy: string;
  policyFlags: Record<string, number | boolean>;
  familyId: string;
  imageId: string;
  vmpl: number;
  signatureAlgo: number;
  signingKey: string;
  platformInfo: string;
  measurement: string;
  reportData: string;
  hostData: string;
  idKeyDigest: string;
  reportId: string;
  chipId: string;
  reportedTcb: TcbRow;
  currentTcb: TcbRow;
  committedTcb: TcbRow;
  launchTcb: TcbRow;
  cpuidFamModStep: [number, number, number];
  firmwareBuildMinorMajor: [number, number, number];
  signatureValid: boolean;
  certChainValid: boolean;
  certProductName: string;
  certHwIdMatchesChipId: boolean;
  certCspId: string | null;
  certTcbMatchesReportedTcb: boolean;
  certValidity: [string, string];
}

const rows = Object.entries(EXPECTED.snp).filter(
  ([, v]) => typeof v.report === "string" && "endorsementKeyCert" in v,
) as unknown as [string, SnpRow][];

/**
 * The error each rejected row must produce. Order in verify.ts: chain, then the report signature,
 * then hwID and TCB; so the fake VCEKs fail on the chain and every altered report (including the
 * tampered CHIP_ID and the wrong pairing) on the signature.
 */
const EXPECTED_REJECTION: Record<string, string> = {
  "milan-trustee-v2-report.bin + milan-fake-vcek-invalid-legacy.der": "CERT_SIGNATURE_INVALID",
  "milan-trustee-v2-report.bin + milan-fake-vcek-invalid-new.der": "CERT_SIGNATURE_INVALID",
  "milan-gcp-v5-report-tampered-measurement.bin": "SNP_REPORT_SIGNATURE_INVALID",
  "milan-gcp-v5-report-tampered-report-data.bin": "SNP_REPORT_SIGNATURE_INVALID",
  "milan-gcp-v5-report-tampered-signature.bin": "SNP_REPORT_SIGNATURE_INVALID",
  "milan-gcp-v5-report-tampered-chip-id.bin": "SNP_REPORT_SIGNATURE_INVALID",
  "milan-gosevguest-v2-report.bin + milan-gcp-v5-vcek.pem": "SNP_REPORT_SIGNATURE_INVALID",
};

/** Rows without a verifyAt: a time inside the validity window of the certificate used. */
function verifyTime(row: SnpRow): Date {
  if (row.verifyAt !== null) return new Date(row.verifyAt);
  const [notBefore] = row.certValidity;
  const t = new Date(notBefore.replace(" ", "T"));
  return new Date(t.getTime() + 30 * 24 * 3600 * 1000);
}

const cert = (name: string): Certificate => parseCertificateBytes(read(`snp/${name}`));

function expectTcb(actual: SnpTcbVersion, expected: TcbRow): void {
  expect({
    bootloader: actual.bootloader,
    tee: actual.tee,
    snp: actual.snp,
    microcode: actual.microcode,
    raw: tcbHex(actual),
  }).toEqual(expected);
}

describe("SNP fixtures (EXPECTED.json)", () => {
  it("covers every SNP report row", () => {
    expect(rows.length).toBe(14);
    for (const [name, row] of rows) {
      const accepted = row.verdict.startsWith("accept");
      expect(accepted || name in EXPECTED_REJECTION, name).toBe(true);
    }
  });

  describe.each(rows)("%s", (name, row) => {
    const bytes = read(`snp/${row.report}`);

    it("parses to the expected values", async () => {
      expect(toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)))).toBe(row.sha256);
      const r = parseSnpReport(bytes);
      expect(r.version).toBe(row.version);
      expect(r.guestSvn).toBe(row.guestSvn);
      expect(`0x${r.policy.raw.toString(16)}`).toBe(row.policy);
      expect({
        abiMinor: r.policy.abiMinor,
        abiMajor: r.policy.abiMajor,
        smtAllowed: r.policy.smtAllowed,
        migrateMA: r.policy.migrateMA,
        debugAllowed: r.policy.debugAllowed,
        singleSocket: r.policy.singleSocket,
      }).toEqual(row.policyFlags);
      expect(toHex(r.familyId)).toBe(row.familyId);
      expect(toHex(r.imageId)).toBe(row.imageId);
      expect(r.vmpl).toBe(row.vmpl);
      expect(r.signatureAlgo).toBe(row.signatureAlgo);
      expect(r.signingKey).toBe(row.signingKey);
      expect(`0x${r.platformInfo.raw.toString(16)}`).toBe(row.platformInfo);
      expect(toHex(r.measurement)).toBe(row.measurement);
      expect(toHex(r.reportData)).toBe(row.reportData);
      expect(toHex(r.hostData)).toBe(row.hostData);
      expect(toHex(r.idKeyDigest)).toBe(row.idKeyDigest);
      expect(toHex(r.reportId)).toBe(row.reportId);
      expect(toHex(r.chipId)).toBe(row.chipId);
      expectTcb(r.reportedTcb, row.reportedTcb);
      expectTcb(r.currentTcb, row.currentTcb);
      expectTcb(r.committedTcb, row.committedTcb);
      expectTcb(r.launchTcb, row.launchTcb);
      const [family, model, stepping] = row.cpuidFamModStep;
      if (row.version >= 3) expect(r.cpuid).toEqual({ family, model, stepping });
      else expect([r.cpuid, family, model, stepping]).toEqual([null, 0, 0, 0]);
      expect([r.currentVersion.build, r.currentVersion.minor, r.currentVersion.major]).toEqual(
        row.firmwareBuildMinorMajor,
      );
      expect(r.signature.r.length).toBe(48);
      expect(r.signature.s.length).toBe(48);
      expect(r.signedBytes).toEqual(bytes.slice(0, 0x2a0));
    });

    it("decodes the endorsement certificate's extensions", () => {
      const c = cert(row.endorsementKeyCert);
      const ext = decodeSnpEndorsementExtensions(c);
      expect(ext.productName).toBe(row.certProductName);
      expect(ext.cspId).toBe(row.certCspId);
      const r = parseSnpReport(bytes);
      if (row.signingKey === "VCEK")
        expect(toHex(ext.hwId as Uint8Array) === row.chipId).toBe(row.certHwIdMatchesChipId);
      else expect(ext.hwId).toBeNull();
      const tcbMatches =
        ext.blSPL === r.reportedTcb.bootloader &&
        ext.teeSPL === r.reportedTcb.tee &&
        ext.snpSPL === r.reportedTcb.snp &&
        ext.ucodeSPL === r.reportedTcb.microcode;
      expect(tcbMatches).toBe(row.certTcbMatchesReportedTcb);
      expect([c.notBefore.toISOString(), c.notAfter.toISOString()]).toEqual(
        row.certValidity.map((t) => new Date(t.replace(" ", "T")).toISOString()),
      );
    });

    it(`verifies to the expected verdict (${row.verdict.slice(0, 40)})`, async () => {
      const report = parseSnpReport(bytes);
      const input = { report, endorsementKey: cert(row.endorsementKeyCert), anchors: AMD_ROOTS, at: verifyTime(row) };
      if (row.verdict.startsWith("accept")) {
        const v = await verifySnpReport(input);
        expect(v).toBeInstanceOf(VerifiedSnpReport);
        expect(v.simulated).toBe(false);
        expect(v.signingKey).toBe(row.signingKey);
        expect(v.product).toBe(row.certProductName.split("-")[0]);
        expect(v.anchor).toBe(amdRoot(v.product));
        expect(v.report).toEqual(report); // re-read from the same bytes
        expectTcb(v.reportedTcb, row.reportedTcb);
        expect(v.extensions.cspId).toBe(row.certCspId);
      } else {
        const error = await rejection(verifySnpReport(input));
        expect(error.code).toBe(EXPECTED_REJECTION[name]);
        expect(error.stage).toBe("verify");
      }
    });
  });
});

describe("SNP verification edge cases", () => {
  const gcp = () => parseSnpReport(read("snp/milan-gcp-v5-report.bin"));
  const gcpVcek = () => cert("milan-gcp-v5-vcek.pem");
  const at = new Date("2026-01-01T00:00:00Z");

  it("accepts the AWS VLEK until its expiry and rejects it after with CERT_EXPIRED", async () => {
    const report = parseSnpReport(read("snp/milan-aws-vlek-v3-report.bin"));
    const vlek = cert("milan-aws-vlek.der");
    const ok = await verifySnpReport({
      report,
      endorsementKey: vlek,
      anchors: AMD_ROOTS,
      at: new Date("2025-12-10T22:14:20Z"),
    });
    expect(ok.signingKey).toBe("VLEK");
    expect(ok.extensions.cspId).toBe("CN=cc-us-east-2.amazonaws.com");
    const error = await rejection(
      verifySnpReport({ report, endorsementKey: vlek, anchors: AMD_ROOTS, at: new Date("2025-12-10T22:14:22Z") }),
    );
    expect(error.code).toBe("CERT_EXPIRED");
  });

  it("verifies and returns the fields of the report's own bytes, never fields a caller changed", async () => {
    const genuine = gcp();
    const forged = {
      ...genuine,
      measurement: new Uint8Array(48).fill(0xee),
      vmpl: 3,
      policy: { ...genuine.policy, debugAllowed: false },
    };
    const verified = await verifySnpReport({ report: forged, endorsementKey: gcpVcek(), anchors: AMD_ROOTS, at });
    expect(toHex(verified.report.measurement)).toBe(toHex(genuine.measurement));
    expect(verified.report.vmpl).toBe(genuine.vmpl);
    expect(verified.report).not.toBe(forged);
    // Changed bytes are what the signature covers: refused.
    const raw = genuine.raw.slice();
    raw[0x90] = (raw[0x90] ?? 0) ^ 1; // inside MEASUREMENT
    const error = await rejection(
      verifySnpReport({ report: { ...genuine, raw }, endorsementKey: gcpVcek(), anchors: AMD_ROOTS, at }),
    );
    expect(error.code).toBe("SNP_REPORT_SIGNATURE_INVALID");
  });

  it("uses the certificate's own DER, not the fields of the object it is given (a swapped public key)", async () => {
    const genuine = gcpVcek();
    const other = generateKeyPairSync("ec", { namedCurve: "P-384" }).publicKey;
    const swapped = {
      ...genuine,
      publicKey: { ...genuine.publicKey, spki: new Uint8Array(other.export({ type: "spki", format: "der" })) },
    } as Certificate;
    const verified = await verifySnpReport({ report: gcp(), endorsementKey: swapped, anchors: AMD_ROOTS, at });
    expect(toHex(verified.endorsementKey.publicKey.spki)).toBe(toHex(genuine.publicKey.spki));
  });

  it("rejects a VCEK before its notBefore with CERT_NOT_YET_VALID", async () => {
    const error = await rejection(
      verifySnpReport({
        report: gcp(),
        endorsementKey: gcpVcek(),
        anchors: AMD_ROOTS,
        at: new Date("2025-12-01T00:00:00Z"),
      }),
    );
    expect(error.code).toBe("CERT_NOT_YET_VALID");
  });

  it("rejects a Milan VCEK against Genoa (and Turin) anchors only", async () => {
    const error = await rejection(
      verifySnpReport({ report: gcp(), endorsementKey: gcpVcek(), anchors: [amdRoot("Genoa"), amdRoot("Turin")], at }),
    );
    expect(error.code).toBe("ROOT_NOT_TRUSTED");
    expect(error.message).toContain("Genoa");
  });

  it("rejects a Milan VCEK whose anchor claims Milan but holds the Genoa keys (chain cannot be built)", async () => {
    const genoa = amdRoot("Genoa");
    const milan = amdRoot("Milan");
    // Right names (Milan ASK), wrong root: the ARK is not the one that signed the ASK.
    const mixed = { product: "Milan" as const, ark: genoa.ark, ask: milan.ask, asvk: null, simulated: false };
    const error = await rejection(verifySnpReport({ report: gcp(), endorsementKey: gcpVcek(), anchors: [mixed], at }));
    expect(["CERT_ISSUER_MISMATCH", "CERT_SIGNATURE_INVALID"]).toContain(error.code);
  });

  it("rejects a VLEK-signed report presented with a VCEK (and vice versa) as SNP_SIGNING_KEY_MISMATCH", async () => {
    const vlekReport = parseSnpReport(read("snp/milan-aws-vlek-v3-report.bin"));
    const e1 = await rejection(
      verifySnpReport({
        report: vlekReport,
        endorsementKey: gcpVcek(),
        anchors: AMD_ROOTS,
        at: new Date("2025-06-01T00:00:00Z"),
      }),
    );
    expect(e1.code).toBe("SNP_SIGNING_KEY_MISMATCH");
    const e2 = await rejection(
      verifySnpReport({
        report: gcp(),
        endorsementKey: cert("milan-aws-vlek.der"),
        anchors: AMD_ROOTS,
        at: new Date("2025-06-01T00:00:00Z"),
      }),
    );
    expect(e2.code).toBe("SNP_SIGNING_KEY_MISMATCH");
  });

  it("rejects a Genoa VCEK for a report whose CPUID says Milan as SNP_PRODUCT_MISMATCH", async () => {
    const error = await rejection(
      verifySnpReport({ report: gcp(), endorsementKey: cert("genoa-azure-v3-vcek.pem"), anchors: AMD_ROOTS, at }),
    );
    expect(error.code).toBe("SNP_PRODUCT_MISMATCH");
  });

  it("rejects a CA certificate as endorsement key (not ECDSA P-384)", async () => {
    const error = await rejection(
      verifySnpReport({ report: gcp(), endorsementKey: amdRoot("Milan").ask, anchors: AMD_ROOTS, at }),
    );
    expect(error.code).toBe("SNP_ENDORSEMENT_KEY_INVALID");
  });

  it("refuses to run without anchors or with an invalid time", async () => {
    const e1 = await rejection(verifySnpReport({ report: gcp(), endorsementKey: gcpVcek(), anchors: [], at }));
    expect([e1.code, e1.stage]).toEqual(["SNP_NO_TRUST_ANCHOR", "configuration"]);
    const e2 = await rejection(
      verifySnpReport({ report: gcp(), endorsementKey: gcpVcek(), anchors: AMD_ROOTS, at: new Date(Number.NaN) }),
    );
    expect(e2.code).toBe("VERIFY_TIME_INVALID");
  });

  it("marks the anchor's simulated flag on the result (an anchor is data: same keys, simulated: true)", async () => {
    const milan = amdRoot("Milan");
    const flagged = { product: milan.product, ark: milan.ark, ask: milan.ask, asvk: milan.asvk, simulated: true };
    const v = await verifySnpReport({ report: gcp(), endorsementKey: gcpVcek(), anchors: [flagged], at });
    expect(v.simulated).toBe(true);
  });

  it("cannot be constructed outside verifySnpReport", () => {
    const Ctor = VerifiedSnpReport as unknown as new (token: symbol, fields: unknown) => unknown;
    expect(() => new Ctor(Symbol("VerifiedSnpReport"), {})).toThrow(/only be created by verifySnpReport/);
  });

  it("the x25519-bound report's REPORT_DATA is SHA-512(NONCE || X25519_KEY) from the inputs file", async () => {
    const text = new TextDecoder().decode(read("snp/milan-gcp-v5-x25519-bound-inputs.txt"));
    const field = (k: string) => {
      const m = text.match(new RegExp(`^${k}=([0-9a-f]+)$`, "m"));
      expect(m).not.toBeNull();
      return Uint8Array.from((m as RegExpMatchArray)[1]!.match(/../g)!.map((h) => Number.parseInt(h, 16)));
    };
    const nonce = field("NONCE");
    const key = field("X25519_KEY");
    expect([nonce.length, key.length]).toEqual([32, 32]);
    const report = parseSnpReport(read("snp/milan-gcp-v5-x25519-bound-report.bin"));
    const verified = await verifySnpReport({
      report,
      endorsementKey: cert("milan-gcp-v5-x25519-bound-vcek.pem"),
      anchors: AMD_ROOTS,
      at,
    });
    const expected = await sha512(new Uint8Array([...nonce, ...key]));
    expect(toHex(verified.report.reportData)).toBe(toHex(expected));
    expect(EXPECTED.snp["x25519-binding"]?.holds).toBe(true);
  });
});

describe("Turin VCEK (turin-virtee-vcek.der)", () => {
  const row = EXPECTED.snp["turin-virtee-vcek.der"] as {
    ext: Record<string, number | string>;
    validity: [string, string];
    chainValid: boolean;
  };
  const vcek = cert("turin-virtee-vcek.der");

  it("decodes its extensions (8-byte hwID, fmcSPL)", () => {
    const ext = decodeSnpEndorsementExtensions(vcek);
    expect(ext.productName).toBe(row.ext.productName);
    expect(ext.product).toBe("Turin");
    expect(toHex(ext.hwId as Uint8Array)).toBe(row.ext.hwID);
    expect(ext.fmcSPL).toBe(row.ext.fmcSPL);
    expect([ext.blSPL, ext.teeSPL, ext.snpSPL, ext.ucodeSPL]).toEqual([
      row.ext.blSPL,
      row.ext.teeSPL,
      row.ext.snpSPL,
      row.ext.ucodeSPL,
    ]);
  });

  it("chains to ARK-Turin (and not to ARK-Milan)", async () => {
    const turin = amdRoot("Turin");
    const chain = [
      { cert: vcek, role: "VCEK" },
      { cert: turin.ask, role: "ASK" },
      { cert: turin.ark, role: "ARK" },
    ];
    const at = new Date("2026-01-01T00:00:00Z");
    await expect(verifyChain(chain, [turin.ark], at)).resolves.toBeUndefined();
    expect(row.chainValid).toBe(true);
    const milan = amdRoot("Milan");
    await expect(
      verifyChain(
        [
          { cert: vcek, role: "VCEK" },
          { cert: milan.ask, role: "ASK" },
          { cert: milan.ark, role: "ARK" },
        ],
        [milan.ark],
        at,
      ),
    ).rejects.toMatchObject({ code: "CERT_ISSUER_MISMATCH" });
  });

  it("builds the KDS URL from the 8-byte hwID and the Turin TCB layout", () => {
    const chipId = new Uint8Array(64);
    chipId.set([0x1e, 0x55, 0x0a, 0x8e, 0xe5, 0xcf, 0x9f, 0x4d]);
    // Turin TCB: fmc 0, bl 0, tee 0, snp 0, ucode 9 (byte 7).
    const tcb = 9n << 56n;
    expect(kdsVcekUrl("Turin", chipId, tcb)).toBe(
      "https://kdsintf.amd.com/vcek/v1/Turin/1e550a8ee5cf9f4d?fmcSPL=0&blSPL=0&teeSPL=0&snpSPL=0&ucodeSPL=9",
    );
    // The whole 64-byte CHIP_ID field is expected, even where the URL uses 8 bytes of it.
    expect(() => kdsVcekUrl("Turin", chipId.subarray(0, 8), tcb)).toThrow(
      expect.objectContaining({ code: "SNP_CHIP_ID_INVALID", message: "CHIP_ID: expected 64 bytes, found 8" }),
    );
  });
});

describe("VCEK fetcher (injected transport, no network)", () => {
  it("builds the Milan KDS URL and caches by URL; failures are not cached", async () => {
    const report = parseSnpReport(read("snp/milan-gcp-v5-report.bin"));
    const url = kdsVcekUrl("Milan", report.chipId, report.reportedTcb);
    expect(url).toBe(
      `https://kdsintf.amd.com/vcek/v1/Milan/${toHex(report.chipId)}?blSPL=4&teeSPL=0&snpSPL=27&ucodeSPL=222`,
    );
    const der = read("snp/milan-virtee-v2-vcek.der");
    const calls: string[] = [];
    let fail = true;
    const fetcher = cachedVcekFetcher(async (u) => {
      calls.push(u);
      if (fail) throw new Error("transport down");
      return der;
    });
    await expect(fetcher.fetchVcek("Milan", report.chipId, report.reportedTcb)).rejects.toThrow("transport down");
    fail = false;
    const a = await fetcher.fetchVcek("Milan", report.chipId, report.reportedTcb);
    const b = await fetcher.fetchVcek("Milan", report.chipId, report.reportedTcb);
    expect(a).toEqual(der);
    expect(b).toEqual(a);
    expect(calls).toEqual([url, url]);
    // A caller that writes into its copy does not change what the next caller is served.
    a.fill(0);
    expect(await fetcher.fetchVcek("Milan", report.chipId, report.reportedTcb)).toEqual(der);
    expect(calls).toEqual([url, url]);
  });
});
