/**
 * Collateral served next to an attestation document (attestation/collateral.ts): its wire shape is
 * checked before anything is verified, it is all-or-nothing (TCB info, QE identity and CRLs), and
 * the enclave's `--tdx-collateral DIR` loader turns Intel's real PCS files into it so that a real
 * quote's document evidence gets its TCB status and revocation checked.
 */
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { base64url } from "jose";
import { afterAll, describe, expect, it } from "vitest";
import {
  parseAttestationCollateral,
  tdxCollateralWire,
  tdxVerificationCollateral,
} from "../../attestation/collateral.ts";
import { verifyDocumentEvidence } from "../../attestation/evidence.ts";
import { INTEL_ROOTS } from "../../attestation/roots/intel.ts";
import {
  insecureSimulatedIntelHierarchy,
  insecureSimulatedTdxCollateral,
  insecureSimulatorAnchors,
  simulateTdxQuote,
} from "../../attestation/sim/index.ts";
import { verifyEvidence } from "../../attestation/tdx/cli-verify.ts";
import { loadTdxCollateralDirectory } from "../../attestation/tdx/collateral-dir.ts";
import { parseTdxQuote } from "../../attestation/tdx/parse.ts";
import {
  COLLATERAL_RELOAD_MS,
  checkOwnCollateral,
  createEvidenceSource,
  reloading,
  tdxCollateralFromDirectory,
} from "../../enclave/tee.ts";
import { codeOf } from "../helpers/attestation.ts";

const TDX = fileURLToPath(new URL("../fixtures/attestation/tdx/", import.meta.url));
const COLLATERAL = join(TDX, "collateral");
const QUOTE = readFileSync(join(TDX, "quote-v4-trustee.bin"));
/** Inside the validity of the fixture collateral and CRLs (tdx-cli.test.ts uses the same time). */
const AT = new Date("2023-07-01T00:00:00Z");
const tmp = mkdtempSync(join(tmpdir(), "cloister-collateral-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const WIRE = {
  tcbInfo: '{"tcbInfo":{}}',
  tcbInfoIssuerChain: "-----BEGIN CERTIFICATE-----",
  qeIdentity: '{"enclaveIdentity":{}}',
  qeIdentityIssuerChain: "-----BEGIN CERTIFICATE-----",
  crls: ["AAAA"],
};

describe("parseAttestationCollateral", () => {
  it("takes none (undefined or null) and the whole TDX set", () => {
    expect(parseAttestationCollateral(undefined)).toBeNull();
    expect(parseAttestationCollateral(null)).toBeNull();
    expect(parseAttestationCollateral({ tdx: WIRE })).toEqual({ tdx: WIRE });
  });

  it.each([
    ["a string", "x", "collateral: expected an object"],
    ["an unknown member", { tdx: WIRE, snp: {} }, 'collateral: expected only "tdx", found 1 other member "snp"'],
    ["no CRLs", { tdx: { ...WIRE, crls: [] } }, "collateral.tdx.crls: expected an array of 1 to 4"],
    ["no QE identity", { tdx: { ...WIRE, qeIdentity: undefined } }, "collateral.tdx.qeIdentity: expected a non-empty"],
    ["a CRL that is not a string", { tdx: { ...WIRE, crls: [7] } }, "collateral.tdx.crls[0]: expected a non-empty"],
  ])("refuses %s with COLLATERAL_MALFORMED", (_name, value, message) => {
    expect(() => parseAttestationCollateral(value)).toThrow(
      expect.objectContaining({
        code: "COLLATERAL_MALFORMED",
        stage: "parse",
        message: expect.stringContaining(message),
      }),
    );
  });
});

describe("an enclave's --tdx-collateral directory", () => {
  it("serves Intel's PCS files so a real quote's TCB status, QE identity and revocation are checked", async () => {
    const wire = await tdxCollateralFromDirectory(COLLATERAL, QUOTE, AT);
    const collateral = parseAttestationCollateral(JSON.parse(JSON.stringify({ tdx: wire })));
    const evidence = { type: "tdx" as const, quote: base64url.encode(QUOTE) };
    const anchors = { snp: [], tdx: INTEL_ROOTS };
    const verified = await verifyDocumentEvidence(evidence, anchors, AT, collateral);
    expect(verified.details).toMatchObject({ tcbStatus: "UpToDate", revocationChecked: true });
    // Without it the same evidence verifies with no status: a policy requiring one refuses it.
    expect((await verifyDocumentEvidence(evidence, anchors, AT)).details).toMatchObject({ tcbStatus: null });
    // Past the CRLs' and collateral's nextUpdate, the collateral makes the evidence fail.
    expect(
      await codeOf(verifyDocumentEvidence(evidence, anchors, new Date("2025-01-01T00:00:00Z"), collateral)),
    ).toMatch(/EXPIRED/);
    expect(tdxVerificationCollateral(wire).crls).toHaveLength(2);
    // A CRL in another spelling of base64url (padding, white space) is refused, named, not decoded
    // leniently: one text for the bytes the enclave serves.
    const crl = wire.crls[0] as string;
    for (const [spelling, found] of [
      [`${crl}==`.slice(0, crl.length + 4 - (crl.length % 4)), `"=" at character ${crl.length}`],
      [` ${crl}`, "at character 0"],
    ] as const) {
      const respelled = { tdx: { ...wire, crls: [spelling, ...wire.crls.slice(1)] } };
      await expect(
        verifyDocumentEvidence(evidence, anchors, AT, parseAttestationCollateral(respelled)),
      ).rejects.toThrow(
        expect.objectContaining({
          code: "COLLATERAL_MALFORMED",
          message: expect.stringMatching(
            new RegExp(`^collateral\\.tdx\\.crls\\[0\\]: expected base64url \\(.*\\), found .*${found}$`),
          ),
        }),
      );
    }
  });

  it("refuses a directory without the CRLs or the QE identity, naming what is missing", async () => {
    const partial = join(tmp, "partial");
    mkdirSync(partial);
    for (const name of readdirSync(COLLATERAL)) {
      if (!name.endsWith(".der") && !name.startsWith("qeidentity-"))
        copyFileSync(join(COLLATERAL, name), join(partial, name));
    }
    await expect(tdxCollateralFromDirectory(partial, QUOTE, AT)).rejects.toMatchObject({
      code: "TDX_COLLATERAL_UNREADABLE",
      message: expect.stringContaining(`--tdx-collateral ${partial}: lacks a QE identity, CRLs (*.der)`),
    });
    await expect(tdxCollateralFromDirectory(join(tmp, "missing"), QUOTE, AT)).rejects.toMatchObject({
      code: "TDX_COLLATERAL_UNREADABLE",
      message: expect.stringContaining(`--tdx-collateral ${join(tmp, "missing")}: cannot list directory (ENOENT`),
    });
  });

  it("verify-evidence: a --collateral-signer-validity commander did not check reads as commander's refusal does", async () => {
    const options = { tee: "tdx", quote: join(TDX, "quote-v4-trustee.bin"), at: AT } as const;
    await expect(verifyEvidence({ ...options, collateralSignerValidity: "lenient" as "strict" })).rejects.toMatchObject(
      {
        code: "USAGE",
        message:
          '--collateral-signer-validity expects one of strict, at-issue-date, accept-expired-signer, found "lenient" (run with --help for usage)',
      },
    );
  });

  it("says why a directory or a file of it cannot be read, naming the path (as other file options say it)", async () => {
    const missing = join(tmp, "missing");
    await expect(tdxCollateralFromDirectory(missing, QUOTE, AT)).rejects.toMatchObject({
      code: "TDX_COLLATERAL_UNREADABLE",
      message: `--tdx-collateral ${missing}: cannot list directory (ENOENT: no such file; check the path)`,
      cause: expect.objectContaining({ code: "ENOENT", syscall: "scandir" }),
    });
    // verify-evidence --collateral keeps the fs error as the cause too.
    await expect(
      verifyEvidence({ tee: "tdx", quote: join(TDX, "quote-v4-trustee.bin"), collateral: missing, at: AT }),
    ).rejects.toMatchObject({
      code: "USAGE",
      message: `--collateral ${missing}: cannot list directory (ENOENT: no such file; check the path)`,
      cause: expect.objectContaining({ code: "ENOENT", syscall: "scandir" }),
    });
    // A file of the directory that cannot be opened (a dangling link): its fs error is the cause.
    const dangling = join(tmp, "dangling");
    mkdirSync(dangling);
    symlinkSync(join(tmp, "nowhere"), join(dangling, "tcbinfo-0.json"));
    await expect(tdxCollateralFromDirectory(dangling, QUOTE, AT)).rejects.toMatchObject({
      code: "TDX_COLLATERAL_UNREADABLE",
      message: `--tdx-collateral "tcbinfo-0.json" in "${dangling}": cannot read (ENOENT: no such file; check the path)`,
      cause: expect.objectContaining({ code: "ENOENT" }),
    });
    const file = join(tmp, "a-file");
    writeFileSync(file, "");
    await expect(tdxCollateralFromDirectory(file, QUOTE, AT)).rejects.toMatchObject({
      code: "TDX_COLLATERAL_UNREADABLE",
      message: `--tdx-collateral ${file}: cannot list directory (ENOTDIR: a part of the path is a file, not a directory; check the path)`,
    });
    // A directory where a TCB info file is expected: refused as what it is, never opened.
    const withDirectory = join(tmp, "with-directory");
    mkdirSync(join(withDirectory, "tcbinfo-0.json"), { recursive: true });
    await expect(tdxCollateralFromDirectory(withDirectory, QUOTE, AT)).rejects.toMatchObject({
      code: "TDX_COLLATERAL_UNREADABLE",
      message: `--tdx-collateral "tcbinfo-0.json" in "${withDirectory}": expected a regular file or a pipe, found a directory`,
    });
  });

  it("is refused with any TEE but tdx", async () => {
    await expect(createEvidenceSource("sim-tdx", { tdxCollateralDir: COLLATERAL })).rejects.toMatchObject({
      code: "TDX_COLLATERAL_UNUSED",
    });
  });
});

/** Lets background work (a reload) finish. */
const settled = () => new Promise((resolve) => setTimeout(resolve, 0));

describe("an enclave's collateral, reloaded", () => {
  const collateral = (n: number) => ({ tdx: { ...WIRE, tcbInfo: `{"n":${n}}` } });

  it("loads again only after the interval, once for concurrent callers; keeps the last good one when a reload fails", async () => {
    let calls = 0;
    let failing = false;
    const logged: string[] = [];
    const source = reloading(
      async () => {
        calls += 1;
        if (failing) throw Object.assign(new Error("half-written file"), { code: "TDX_COLLATERAL_UNREADABLE" });
        return collateral(calls);
      },
      (line) => logged.push(line),
    );
    const t0 = Date.parse("2026-12-02T00:00:00Z");
    const [a, b] = await Promise.all([source(new Date(t0)), source(new Date(t0))]);
    expect(a).toEqual(collateral(1));
    expect(b).toBe(a);
    expect(await source(new Date(t0 + COLLATERAL_RELOAD_MS - 1))).toBe(a);
    expect(calls).toBe(1);
    // A clock set back a little does not load again.
    expect(await source(new Date(t0 - 1000))).toBe(a);
    expect(calls).toBe(1);
    failing = true;
    // Past the interval the held collateral is served at once while the reload runs (and fails).
    expect(await source(new Date(t0 + COLLATERAL_RELOAD_MS))).toBe(a);
    await settled();
    expect(calls).toBe(2);
    expect(logged.join("\n")).toContain("collateral reload failed (TDX_COLLATERAL_UNREADABLE: half-written file)");
    // Not retried on every request: only after another interval.
    expect(await source(new Date(t0 + COLLATERAL_RELOAD_MS + 1000))).toBe(a);
    expect(calls).toBe(2);
    failing = false;
    expect(await source(new Date(t0 + 2 * COLLATERAL_RELOAD_MS + 1))).toBe(a);
    await settled();
    expect(await source(new Date(t0 + 2 * COLLATERAL_RELOAD_MS + 2))).toEqual(collateral(3));
    expect(calls).toBe(3);
  });

  it("logs a reload that rejects with something other than an Error, and keeps serving", async () => {
    let calls = 0;
    const logged: string[] = [];
    const source = reloading(
      async () => {
        calls += 1;
        if (calls > 1) throw undefined;
        return collateral(1);
      },
      (line) => logged.push(line),
    );
    const t0 = Date.parse("2026-12-02T00:00:00Z");
    const first = await source(new Date(t0));
    expect(await source(new Date(t0 + COLLATERAL_RELOAD_MS))).toBe(first);
    await settled();
    expect(logged.join("\n")).toContain("collateral reload failed (undefined)");
    expect(await source(new Date(t0 + COLLATERAL_RELOAD_MS + 1))).toBe(first);
    expect(calls).toBe(2);
  });

  it("fails the first load (the boot) rather than serve nothing silently", async () => {
    const source = reloading(async () => {
      throw new Error("no such directory");
    });
    await expect(source(new Date())).rejects.toThrow("no such directory");
  });
});

describe("a collateral directory with renewals kept", () => {
  it("serves one CRL per issuer, the newest issued by now, and leaves out files that do not parse", async () => {
    const hierarchy = insecureSimulatedIntelHierarchy();
    const quote = simulateTdxQuote(hierarchy, {
      reportData: new Uint8Array(64),
      mrtd: new Uint8Array(48),
      rtmrs: [new Uint8Array(48), new Uint8Array(48), new Uint8Array(48), new Uint8Array(48)],
    });
    const at = new Date("2026-06-01T00:00:00Z");
    const old = insecureSimulatedTdxCollateral(hierarchy, { issueDate: new Date("2026-03-01T00:00:00Z") });
    const current = insecureSimulatedTdxCollateral(hierarchy, { issueDate: new Date("2026-05-20T00:00:00Z") });
    const future = insecureSimulatedTdxCollateral(hierarchy, { issueDate: new Date("2026-07-01T00:00:00Z") });
    // Issued half an hour before `at`: current, but a verifier whose clock is behind would find it
    // issued in its future, so the enclave serves the one of 05-20 while that is current.
    const fresh = insecureSimulatedTdxCollateral(hierarchy, { issueDate: new Date(at.getTime() - 30 * 60_000) });
    const dir = join(tmp, "renewals");
    mkdirSync(dir);
    writeFileSync(join(dir, "tcbinfo-current.json"), current.tcbInfo.json);
    writeFileSync(join(dir, "tcb-info-issuer-chain.pem"), current.tcbInfo.issuerChain);
    writeFileSync(join(dir, "qeidentity-current.json"), current.qeIdentity.json);
    writeFileSync(join(dir, "qe-identity-issuer-chain.pem"), current.qeIdentity.issuerChain);
    writeFileSync(join(dir, "tcbinfo-sgx.json"), '{"tcbInfo":{"id":"SGX"},"signature":"00"}');
    for (const [name, set] of [
      ["a-old", old],
      ["b-current", current],
      ["c-future", future],
      ["d-fresh", fresh],
    ] as const) {
      writeFileSync(join(dir, `${name}-pck.der`), set.crls[0] as Uint8Array);
      writeFileSync(join(dir, `${name}-root.der`), set.crls[1] as Uint8Array);
    }
    const wire = await tdxCollateralFromDirectory(dir, quote, at);
    expect(wire.crls).toEqual([current.crls[0], current.crls[1]].map((c) => base64url.encode(c as Uint8Array)));
    // verify-evidence (no settling time) takes the newest current ones.
    const fail = (message: string) => new Error(message);
    const cli = await loadTdxCollateralDirectory(dir, parseTdxQuote(quote), at, "--collateral", fail);
    expect(cli.crls).toEqual([fresh.crls[0], fresh.crls[1]]);
    expect(cli.notes.join("\n")).toContain('"tcbinfo-sgx.json" left out');
    const verified = await verifyDocumentEvidence(
      { type: "tdx", quote: base64url.encode(quote) },
      { snp: [], tdx: insecureSimulatorAnchors().tdx },
      at,
      { tdx: wire },
    );
    expect(verified.details).toMatchObject({ tcbStatus: "UpToDate", revocationChecked: true });
  });
});

describe("an enclave's check of its own collateral", () => {
  const hierarchy = insecureSimulatedIntelHierarchy();
  const zero = new Uint8Array(48);
  const quote = simulateTdxQuote(hierarchy, {
    reportData: new Uint8Array(64),
    mrtd: zero,
    rtmrs: [zero, zero, zero, zero],
  });
  const at = new Date("2026-06-01T00:00:00Z");
  const anchors = { snp: [], tdx: insecureSimulatorAnchors().tdx };
  const wire = (options: { revokePck?: boolean; revokeTcbSigner?: boolean } = {}) =>
    tdxCollateralWire(
      insecureSimulatedTdxCollateral(hierarchy, { issueDate: new Date("2026-05-20T00:00:00Z"), ...options }),
    );

  it("serves collateral that revokes this platform (logged), rather than keep the older one", async () => {
    const logged: string[] = [];
    await checkOwnCollateral(quote, { tdx: wire() }, at, (l) => logged.push(l), anchors);
    expect(logged).toEqual([]);
    await checkOwnCollateral(quote, { tdx: wire({ revokePck: true }) }, at, (l) => logged.push(l), anchors);
    expect(logged.join("\n")).toContain("Intel's CRLs revoke a certificate of this platform's PCK chain");
    // A revoked collateral signer is served and logged the same way (the directory has nothing newer).
    logged.length = 0;
    await checkOwnCollateral(quote, { tdx: wire({ revokeTcbSigner: true }) }, at, (l) => logged.push(l), anchors);
    expect(logged.join("\n")).toMatch(/or of the collateral's signer \(TCB info signer certificate .* is revoked\)/);
    // ...but only once the rest of it verifies: a revoking CRL does not carry broken collateral in.
    const revoked = wire({ revokePck: true });
    const tampered = {
      tdx: {
        ...revoked,
        tcbInfo: revoked.tcbInfo.replace('"tcbEvaluationDataNumber":', '"tcbEvaluationDataNumber":1'),
      },
    };
    await expect(checkOwnCollateral(quote, tampered, at, () => {}, anchors)).rejects.toMatchObject({
      code: "TDX_COLLATERAL_INVALID",
      message: expect.stringContaining("TDX_COLLATERAL_SIGNATURE_INVALID"),
    });
    // A client does refuse it.
    await expect(
      verifyDocumentEvidence({ type: "tdx", quote: base64url.encode(quote) }, anchors, at, {
        tdx: wire({ revokePck: true }),
      }),
    ).rejects.toMatchObject({ code: "CERT_REVOKED" });
  });

  it("refuses what clients would refuse as malformed (more CRLs than they take)", async () => {
    const good = wire();
    const five = { tdx: { ...good, crls: [...good.crls, ...good.crls, good.crls[0] as string] } };
    await expect(checkOwnCollateral(quote, five, at, () => {}, anchors)).rejects.toMatchObject({
      code: "TDX_COLLATERAL_INVALID",
      message: expect.stringContaining("COLLATERAL_MALFORMED"),
    });
  });
});

describe("a collateral directory's files, read to a bound", () => {
  it("refuses a file past 512 KiB (what the wire form takes of one), naming the option, the file and the bound", async () => {
    const dir = join(tmp, "bounded");
    mkdirSync(dir);
    for (const name of readdirSync(COLLATERAL)) copyFileSync(join(COLLATERAL, name), join(dir, name));
    const quote = parseTdxQuote(QUOTE);
    const fail = (message: string) => new Error(message);
    // Real Intel PCS collateral (a few KiB each) loads as it is.
    await expect(loadTdxCollateralDirectory(dir, quote, AT, "--collateral", fail)).resolves.toMatchObject({
      files: { tcbInfo: expect.stringMatching(/^tcbinfo-/) },
    });
    // A sparse CRL one byte past the bound (a wrong directory, a device): refused, never held whole.
    const huge = join(dir, "z-huge.der");
    writeFileSync(huge, "");
    truncateSync(huge, 512 * 1024 + 1);
    await expect(loadTdxCollateralDirectory(dir, quote, AT, "--collateral", fail)).rejects.toThrow(
      new Error(
        `--collateral "z-huge.der" in "${dir}": expected at most ${512 * 1024} bytes (Intel PCS collateral (a TCB info, QE identity, issuer chain or CRL), a few KiB; the wire form takes 512 KiB of one), found more`,
      ),
    );
  });

  it("refuses a directory without an issuer chain, naming the option, the directory and the file", async () => {
    const dir = join(tmp, "no-chain");
    mkdirSync(dir);
    for (const name of readdirSync(COLLATERAL)) {
      if (name !== "tcb-info-issuer-chain.pem") copyFileSync(join(COLLATERAL, name), join(dir, name));
    }
    const fail = (message: string) => new Error(message);
    await expect(loadTdxCollateralDirectory(dir, parseTdxQuote(QUOTE), AT, "--collateral", fail)).rejects.toThrow(
      new Error(`--collateral ${dir}: has no tcb-info-issuer-chain.pem`),
    );
  });
});
