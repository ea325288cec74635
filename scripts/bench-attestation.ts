/**
 * Attestation verification benchmark.
 *
 *   npm run bench:attestation                 # table
 *   npm run bench:attestation -- --json       # rows as JSON
 *   npm run bench:attestation -- --cold-runs 10 --warm-runs 300
 *
 * Rows:
 * - "cold SNP <fixture>": full SEV-SNP verification of each genuine captured report (every fixture
 *   EXPECTED.json says "accept"): parse the report and the VCEK/VLEK, chain to the pinned AMD ARK at
 *   the fixture's verifyAt, report signature, hwID/cspID, TCB. "Cold" = the first verification in a
 *   fresh Node process, one process per sample: modules are already imported (not timed), but the
 *   lazily parsed AMD roots, every WebCrypto key import and the signature memo (attestation/crypto.ts)
 *   are empty, so all of them are paid inside the timed call. Target: median ≤ 20 ms.
 * - "document, already verified": the whole `verifyAttestationDocument` (evidence, appraisal,
 *   REPORT_DATA binding, document JWS, nonce answer, manifest signature and policy) of a simulated
 *   SEV-SNP attestation document built as the enclave builds it, second and later calls in one
 *   process, each with a fresh 32-byte nonce and a fresh nonce answer (the answer is made outside
 *   the timed region). Target: median ≤ 1 ms.
 * - "document, already verified: verifyWithClientPolicy": the same document, nonces and answers through
 *   the call the SDK (each attest) and the key broker (each release) make with a client policy: the
 *   policy parsed (a parsed one recognised), its anchors and manifest check derived, then the whole
 *   verifyAttestationDocument and the accepted evidence types. Warm (the document already verified).
 *   No target of its own (the 1 ms above is verifyAttestationDocument's).
 * - "document (sim TDX, collateral), already verified": the same call for a simulated TD's document
 *   with the collateral its enclave serves, parsed from the wire text in the timed call (as each
 *   attest parses it). No target.
 * - "document, memo cleared each call": the same, with the signature memo emptied before every call
 *   (keys stay imported): what the already-verified path costs without the memo. No target.
 * - "document, first call": the first call of that process (simulator anchors parsed, keys imported).
 * - "TDX evidence (sim)": the TDX evidence stage alone for a simulated quote, without and with the
 *   collateral an enclave serves next to its document: what checking the TCB status costs. No target.
 *
 * Times are wall-clock (performance.now) and include WebCrypto's thread-pool hops; other processes on
 * the machine inflate them (the load average is printed).
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { VerifiedEnclave } from "../attestation/document.ts";
import { formatLoad, formatMachine, intArg, type Stats, stats } from "./bench-common.ts";

const FIXTURES = new URL("../test/fixtures/attestation/snp/", import.meta.url);
const EXPECTED = new URL("../test/fixtures/attestation/EXPECTED.json", import.meta.url);

type SnpCase = { report: string; cert: string; at: string };

function acceptedSnpCases(): SnpCase[] {
  const expected = JSON.parse(readFileSync(EXPECTED, "utf8")) as {
    snp: Record<string, { report: string; endorsementKeyCert?: string; verifyAt?: string; verdict?: string }>;
  };
  const cases: SnpCase[] = [];
  for (const row of Object.values(expected.snp)) {
    if (row.verdict !== "accept" || row.endorsementKeyCert === undefined || row.verifyAt === undefined) continue;
    cases.push({ report: row.report, cert: row.endorsementKeyCert, at: row.verifyAt });
  }
  if (cases.length === 0) throw new Error("EXPECTED.json: no accepted SNP fixture found");
  return cases;
}

/** Child: one cold verification of one fixture, printed as JSON {coldMs, secondMs}. */
async function coldChild(c: SnpCase): Promise<void> {
  const reportBytes = new Uint8Array(readFileSync(new URL(c.report, FIXTURES)));
  const certBytes = new Uint8Array(readFileSync(new URL(c.cert, FIXTURES)));
  const { parseSnpReport } = await import("../attestation/snp/parse.ts");
  const { verifySnpReport } = await import("../attestation/snp/verify.ts");
  const { AMD_ROOTS } = await import("../attestation/roots/amd.ts");
  const { parseCertificateBytes } = await import("../attestation/x509.ts");
  const at = new Date(c.at);
  const once = async () => {
    const t = performance.now();
    const verified = await verifySnpReport({
      report: parseSnpReport(reportBytes),
      endorsementKey: parseCertificateBytes(certBytes),
      anchors: AMD_ROOTS,
      at,
    });
    const ms = performance.now() - t;
    if (verified.simulated) throw new Error("a genuine fixture verified as simulated");
    return ms;
  };
  const coldMs = await once();
  const secondMs = await once();
  process.stdout.write(JSON.stringify({ coldMs, secondMs }));
}

/** Builds a simulated SNP attestation document exactly as the enclave does, and verifies it. */
async function documentRows(warmRuns: number): Promise<Row[]> {
  const { base64url } = await import("jose");
  const nacl = (await import("tweetnacl")).default;
  const { computeReportData } = await import("../attestation/binding.ts");
  const { toHex } = await import("../attestation/bytes.ts");
  const { clearVerifiedSignatureMemo } = await import("../attestation/crypto.ts");
  const { clearVerifiedDocumentCache, createAttestationDocument, createNonceAnswer, verifyAttestationDocument } =
    await import("../attestation/document.ts");
  const sim = await import("../attestation/sim/index.ts");
  const { insecureSimulatedAmdHierarchy, simulateSnpReport } = sim;
  const { parseAttestationCollateral, tdxCollateralWire } = await import("../attestation/collateral.ts");
  const { simulatorClientPolicy } = await import("../client/dev-policy.ts");
  const { anchorsForPolicy, manifestCheckForPolicy, verifyWithClientPolicy } = await import("../client/policy.ts");
  const { devManifest } = await import("../manifests/dev.ts");
  const { manifestDigest } = await import("../manifests/digest.ts");
  const { generateManifestSigningKey, signManifest } = await import("../manifests/sign.ts");

  const now = new Date();
  const measurement = new Uint8Array(48).fill(0x5a);
  const operator = await generateManifestSigningKey("EdDSA");
  const manifest = devManifest();
  const manifestJws = await signManifest(manifest, operator.privateJwk);
  const keys = { signing: nacl.sign.keyPair(), sealing: nacl.box.keyPair() };
  const hierarchy = insecureSimulatedAmdHierarchy();
  const reportData = await computeReportData({
    signingPublicKey: keys.signing.publicKey,
    sealingPublicKey: keys.sealing.publicKey,
    manifestDigest: await manifestDigest(manifestJws),
  });
  const report = simulateSnpReport(hierarchy, { reportData, measurement });
  const document = await createAttestationDocument({
    keys,
    evidence: {
      type: "sev-snp",
      report: base64url.encode(report),
      endorsementKey: base64url.encode(hierarchy.vcek.certificate),
    },
    manifest: manifestJws,
    maaToken: null,
    now,
  });
  const policy = simulatorClientPolicy({
    tee: "sim-snp",
    measurement: toHex(measurement),
    operatorKey: operator.publicJwk,
    modelSha256: manifest.model.sha256,
    serviceName: manifest.service.name,
  });
  const manifestCheck = manifestCheckForPolicy(policy);
  type Verify = (nonce: { value: Uint8Array; answer: string }) => Promise<VerifiedEnclave>;
  /** One timed verification with a fresh nonce and nonce answer (made outside the timed region). */
  const timedOnce = async (verify: Verify, of = document): Promise<number> => {
    const nonce = nacl.randomBytes(32);
    const answer = await createNonceAnswer({ keys, document: of, nonce, now });
    const t = performance.now();
    const enclave = await verify({ value: nonce, answer });
    const ms = performance.now() - t;
    if (!enclave.simulated || enclave.measurement !== toHex(measurement)) throw new Error("unexpected verification");
    return ms;
  };
  // Each call gets anchors the way a new SDK session does (connect() calls anchorsForPolicy).
  const verifyOnce = async (): Promise<number> => {
    const anchors = await anchorsForPolicy(policy);
    return timedOnce((nonce) =>
      verifyAttestationDocument(document, {
        policy: policy.attestation,
        anchors,
        manifest: manifestCheck,
        at: now,
        nonce,
        maxClockSkewSeconds: 120,
      }),
    );
  };

  const first = await verifyOnce();
  const warm: number[] = [];
  for (let i = 0; i < warmRuns; i++) warm.push(await verifyOnce());
  const noDocumentCache: number[] = [];
  for (let i = 0; i < Math.min(warmRuns, 100); i++) {
    clearVerifiedDocumentCache();
    noDocumentCache.push(await verifyOnce());
  }
  const noMemo: number[] = [];
  for (let i = 0; i < Math.min(warmRuns, 100); i++) {
    clearVerifiedDocumentCache();
    clearVerifiedSignatureMemo();
    noMemo.push(await verifyOnce());
  }
  // The SDK's and the key broker's call: the client policy parsed, its anchors and manifest check
  // derived, every stage and the accepted evidence types, no collateral (as for SNP). The first call
  // fills the document cache again (cleared above); the timed ones find it.
  const clientPolicyOnce = () => timedOnce((nonce) => verifyWithClientPolicy(document, policy, nonce, now, null));
  await clientPolicyOnce();
  const clientPolicyWarm: number[] = [];
  for (let i = 0; i < warmRuns; i++) clientPolicyWarm.push(await clientPolicyOnce());
  // The same for a simulated TD, with the collateral its enclave serves, parsed from the wire text
  // on each call as each attest does: what the cache compares it by is on the timed path.
  const zero = new Uint8Array(48);
  const intel = sim.insecureSimulatedIntelHierarchy();
  const quote = sim.simulateTdxQuote(intel, { reportData, mrtd: measurement, rtmrs: [zero, zero, zero, zero] });
  const tdxDocument = await createAttestationDocument({
    keys,
    evidence: { type: "tdx", quote: base64url.encode(quote) },
    manifest: manifestJws,
    maaToken: null,
    now,
  });
  const tdxPolicy = simulatorClientPolicy({
    tee: "sim-tdx",
    measurement: toHex(measurement),
    operatorKey: operator.publicJwk,
    modelSha256: manifest.model.sha256,
    serviceName: manifest.service.name,
  });
  const issueDate = new Date(now.getTime() - 3600_000);
  const wire = JSON.stringify({ tdx: tdxCollateralWire(sim.insecureSimulatedTdxCollateral(intel, { issueDate })) });
  const tdxOnce = () =>
    timedOnce(
      (nonce) =>
        verifyWithClientPolicy(tdxDocument, tdxPolicy, nonce, now, parseAttestationCollateral(JSON.parse(wire))),
      tdxDocument,
    );
  await tdxOnce();
  const tdxWarm: number[] = [];
  for (let i = 0; i < warmRuns; i++) tdxWarm.push(await tdxOnce());
  return [
    row("document (sim SNP), already verified: whole verifyAttestationDocument", stats(warm), 1),
    row(
      "document (sim SNP), already verified: verifyWithClientPolicy (SDK, key broker)",
      stats(clientPolicyWarm),
      null,
    ),
    row("document (sim TDX, collateral), already verified: verifyWithClientPolicy", stats(tdxWarm), null),
    row("document (sim SNP), document cache cleared before each call", stats(noDocumentCache), null),
    row("document (sim SNP), document cache and signature memo cleared", stats(noMemo), null),
    row("document (sim SNP), first call in the process", stats([first]), null),
  ];
}

/**
 * TDX evidence of a simulated quote (verifyDocumentEvidence: PCK chain, QE report, quote
 * signature), without and with the collateral an enclave serves next to its document (TCB info and
 * QE identity signatures, TCB level, CRLs of the PCK chain): what checking the TCB status adds to
 * a TDX attestation when the document is not already verified. Warm (second and later calls).
 */
async function tdxEvidenceRows(warmRuns: number): Promise<Row[]> {
  const { base64url } = await import("jose");
  const { tdxCollateralWire } = await import("../attestation/collateral.ts");
  const { verifyDocumentEvidence } = await import("../attestation/evidence.ts");
  const sim = await import("../attestation/sim/index.ts");
  const hierarchy = sim.insecureSimulatedIntelHierarchy();
  const zero = new Uint8Array(48);
  const quote = sim.simulateTdxQuote(hierarchy, {
    reportData: new Uint8Array(64),
    mrtd: zero,
    rtmrs: [zero, zero, zero, zero],
  });
  const at = new Date();
  const collateral = {
    tdx: tdxCollateralWire(
      sim.insecureSimulatedTdxCollateral(hierarchy, { issueDate: new Date(at.getTime() - 3600_000) }),
    ),
  };
  const evidence = { type: "tdx" as const, quote: base64url.encode(quote) };
  const anchors = { snp: [], tdx: sim.insecureSimulatorAnchors().tdx };
  const rows: Row[] = [];
  for (const [name, given] of [
    ["TDX evidence (sim), no collateral: verifyDocumentEvidence", null],
    ["TDX evidence (sim), with collateral (TCB status, QE identity, CRLs)", collateral],
  ] as const) {
    const once = async () => {
      const t = performance.now();
      const verified = await verifyDocumentEvidence(evidence, anchors, at, given);
      const ms = performance.now() - t;
      if ((verified.details.tcbStatus ?? null) !== (given === null ? null : "UpToDate")) throw new Error("unexpected");
      return ms;
    };
    await once();
    const times: number[] = [];
    for (let i = 0; i < warmRuns; i++) times.push(await once());
    rows.push(row(name, stats(times), null));
  }
  return rows;
}

type Row = {
  measurement: string;
  n: number;
  medianMs: number;
  p90Ms: number;
  p99Ms: number;
  target: string;
  result: string;
};

function row(measurement: string, s: Stats, targetMs: number | null): Row {
  return {
    measurement,
    n: s.n,
    medianMs: Number(s.median.toFixed(3)),
    p90Ms: Number(s.p90.toFixed(3)),
    p99Ms: Number(s.p99.toFixed(3)),
    target: targetMs === null ? "-" : `median ≤ ${targetMs} ms`,
    result: targetMs === null ? "-" : s.median <= targetMs ? "PASS" : "FAIL",
  };
}

function formatTable(rows: readonly Row[]): string {
  const headers = ["measurement", "n", "median ms", "p90 ms", "p99 ms", "target", "result"];
  const cells = rows.map((r) => [
    r.measurement,
    String(r.n),
    r.medianMs.toFixed(3),
    r.p90Ms.toFixed(3),
    r.p99Ms.toFixed(3),
    r.target,
    r.result,
  ]);
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] as string).length)));
  const line = (c: readonly string[]) =>
    `| ${c.map((v, i) => (i === 0 ? v.padEnd(widths[i] as number) : v.padStart(widths[i] as number))).join(" | ")} |`;
  const rule = `|${widths.map((w, i) => (i === 0 ? `${"-".repeat(w + 1)}-` : `${"-".repeat(w + 1)}:`)).join("|")}|`;
  return [line(headers), rule, ...cells.map(line)].join("\n");
}

async function main(): Promise<void> {
  const childIndex = process.argv.indexOf("--cold-child");
  if (childIndex !== -1) {
    await coldChild(JSON.parse(String(process.argv[childIndex + 1])) as SnpCase);
    return;
  }
  const coldRuns = intArg("--cold-runs", 10, 1, 100);
  const warmRuns = intArg("--warm-runs", 300, 10, 100_000);
  const json = process.argv.includes("--json");
  const self = fileURLToPath(import.meta.url);
  const loadStart = formatLoad();

  const rows: Row[] = [];
  const allCold: number[] = [];
  for (const c of acceptedSnpCases()) {
    const cold: number[] = [];
    for (let i = 0; i < coldRuns; i++) {
      const out = execFileSync(process.execPath, ["--import", "tsx", self, "--cold-child", JSON.stringify(c)], {
        encoding: "utf8",
      });
      cold.push((JSON.parse(out) as { coldMs: number }).coldMs);
    }
    allCold.push(...cold);
    rows.push(row(`cold SNP ${c.report} (fresh process each)`, stats(cold), 20));
    if (!json) process.stderr.write(`cold: ${c.report} done\n`);
  }
  rows.push(row("cold SNP, all fixtures together", stats(allCold), 20));
  rows.push(...(await documentRows(warmRuns)));
  rows.push(...(await tdxEvidenceRows(warmRuns)));

  if (json) {
    process.stdout.write(`${JSON.stringify({ loadStart, loadEnd: formatLoad(), rows }, null, 2)}\n`);
    return;
  }
  process.stdout.write(formatMachine());
  process.stdout.write(`date: ${new Date().toISOString()}; load average at start: ${loadStart}\n\n`);
  process.stdout.write(`${formatTable(rows)}\n\n`);
  process.stdout.write(`load average at end: ${formatLoad()} (other processes share these cores)\n`);
}

await main();
