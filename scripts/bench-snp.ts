/**
 * SEV-SNP verification benchmark: cold (first verification in a fresh process: root parsing, key
 * imports, WebCrypto start-up) and warm (median of repeated verifications) for each genuine fixture.
 * Target: cold full verification ≤ 20 ms. Run: `npx tsx scripts/bench-snp.ts` (add --json for JSON).
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const FIXTURES = new URL("../test/fixtures/attestation/snp/", import.meta.url);
const CASES = [
  ["milan-gcp-v5-report.bin", "milan-gcp-v5-vcek.pem", "2026-01-01T00:00:00Z"],
  ["genoa-azure-v3-report.bin", "genoa-azure-v3-vcek.pem", "2026-01-01T00:00:00Z"],
  ["milan-aws-vlek-v3-report.bin", "milan-aws-vlek.der", "2025-06-01T00:00:00Z"],
  ["milan-trustee-v2-report.bin", "milan-trustee-v2-vcek.der", "2024-01-01T00:00:00Z"],
] as const;

async function measure(index: number, runs: number): Promise<{ cold: number; warm: number }> {
  const [reportName, certName, at] = CASES[index] as (typeof CASES)[number];
  const reportBytes = new Uint8Array(readFileSync(new URL(reportName, FIXTURES)));
  const certBytes = new Uint8Array(readFileSync(new URL(certName, FIXTURES)));
  const { parseSnpReport } = await import("../attestation/snp/parse.ts");
  const { verifySnpReport } = await import("../attestation/snp/verify.ts");
  const { AMD_ROOTS } = await import("../attestation/roots/amd.ts");
  const { parseCertificateBytes } = await import("../attestation/x509.ts");
  const once = async () => {
    const t = performance.now();
    await verifySnpReport({
      report: parseSnpReport(reportBytes),
      endorsementKey: parseCertificateBytes(certBytes),
      anchors: AMD_ROOTS,
      at: new Date(at),
    });
    return performance.now() - t;
  };
  const cold = await once();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) times.push(await once());
  times.sort((a, b) => a - b);
  return { cold, warm: times[Math.floor(times.length / 2)] as number };
}

const child = process.argv.indexOf("--child");
if (child !== -1) {
  // One fresh process per case, so "cold" really is the first verification of the process.
  const result = await measure(Number(process.argv[child + 1]), 50);
  process.stdout.write(JSON.stringify(result));
} else {
  const self = fileURLToPath(import.meta.url);
  const rows = CASES.map(([report], i) => {
    const out = execFileSync(process.execPath, ["--import", "tsx", self, "--child", String(i)], { encoding: "utf8" });
    const { cold, warm } = JSON.parse(out) as { cold: number; warm: number };
    return {
      report,
      coldMs: Number(cold.toFixed(2)),
      warmMedianMs: Number(warm.toFixed(2)),
      target: cold <= 20 ? "ok" : "OVER 20 ms",
    };
  });
  if (process.argv.includes("--json")) process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
  else {
    console.log("SEV-SNP full verification (parse report + cert, chain to pinned ARK, signature, hwID, TCB)");
    console.table(rows);
  }
}
