/**
 * The files `cloister attest --evidence-out DIR` writes (client/cli/run-client.ts evidenceOutFiles),
 * from a document carrying the captured hardware evidence of test/fixtures/attestation: each file is
 * byte for byte the evidence, and `verify-evidence` gives the same verdict on it as on the fixture
 * itself (at the fixture's time). The documents here are signed by a fresh key and bind nothing:
 * evidenceOutFiles is only ever given a document attest verified (test/e2e/evidence-out.test.ts).
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { base64url } from "jose";
import nacl from "tweetnacl";
import { afterEach, describe, expect, it } from "vitest";
import { createAttestationDocument } from "../../attestation/document.ts";
import type { DocumentEvidence } from "../../attestation/evidence.ts";
import { EVIDENCE_OUT_FILES, evidenceOutFiles, writeOutputFiles } from "../../client/cli/run-client.ts";
import { REPO_ROOT } from "../helpers/cli.ts";
import { inProcessCli } from "../helpers/cli-in-process.ts";

const run = inProcessCli();
const F = join(REPO_ROOT, "test", "fixtures", "attestation");
const fixture = (path: string) => new Uint8Array(readFileSync(join(F, path)));
const b64 = (bytes: Uint8Array) => base64url.encode(bytes);
const derOfPem = (path: string) =>
  new Uint8Array(
    Buffer.from(
      readFileSync(join(F, path), "utf8")
        .replace(/-----[A-Z ]+-----/g, "")
        .replace(/\s/g, ""),
      "base64",
    ),
  );

let dir: string | null = null;
afterEach(() => {
  if (dir !== null) rmSync(dir, { recursive: true, force: true });
  dir = null;
});

async function documentOf(evidence: DocumentEvidence): Promise<string> {
  const keys = { signing: nacl.sign.keyPair(), sealing: nacl.box.keyPair() };
  return createAttestationDocument({ keys, evidence, manifest: "e30.e30.AA", maaToken: null, now: new Date(0) });
}

/** The files evidenceOutFiles makes of `document`, written to a new directory, by name. */
async function written(document: string): Promise<Map<string, string>> {
  dir = mkdtempSync(join(tmpdir(), "cloister-evidence-out-"));
  const paths = new Map<string, string>();
  for (const { name, bytes } of await evidenceOutFiles(document)) {
    writeFileSync(join(dir, name), bytes);
    paths.set(name, join(dir, name));
  }
  return paths;
}

async function verdictLine(args: string[]): Promise<{ code: number; line: string | undefined }> {
  const { code, stdout } = await run(["verify-evidence", ...args]);
  return { code, line: stdout.split("\n")[0] };
}

describe("attest --evidence-out's files, from documents carrying captured hardware evidence", () => {
  it("sev-snp: report.bin and cert.der, which verify as the fixture does", async () => {
    const report = fixture("snp/milan-gcp-v5-report.bin");
    const vcek = derOfPem("snp/milan-gcp-v5-vcek.pem");
    const files = await written(await documentOf({ type: "sev-snp", report: b64(report), endorsementKey: b64(vcek) }));
    expect([...files.keys()]).toEqual([...EVIDENCE_OUT_FILES["sev-snp"]]);
    expect(readFileSync(files.get("report.bin") as string).equals(report)).toBe(true);
    expect(readFileSync(files.get("cert.der") as string).equals(vcek)).toBe(true);
    const at = ["--at", "2026-01-01T00:00:00Z"];
    const fromFiles = await verdictLine([
      "--tee",
      "snp",
      "--report",
      files.get("report.bin") as string,
      "--cert",
      files.get("cert.der") as string,
      ...at,
    ]);
    expect(fromFiles).toEqual({ code: 0, line: "snp: VALID" });
  });

  it("tdx: quote.bin, which verifies with Intel's collateral as the fixture does", async () => {
    const quote = fixture("tdx/quote-v4-trustee.bin");
    const files = await written(await documentOf({ type: "tdx", quote: b64(quote) }));
    expect([...files.keys()]).toEqual([...EVIDENCE_OUT_FILES.tdx]);
    expect(readFileSync(files.get("quote.bin") as string).equals(quote)).toBe(true);
    const args = (file: string) => [
      "--tee",
      "tdx",
      "--quote",
      file,
      "--collateral",
      join(F, "tdx", "collateral"),
      "--at",
      "2023-07-01T00:00:00Z",
      "--json",
    ];
    const fromFile = await run(["verify-evidence", ...args(files.get("quote.bin") as string)]);
    const fromFixture = await run(["verify-evidence", ...args(join(F, "tdx", "quote-v4-trustee.bin"))]);
    expect(fromFile.code).toBe(0);
    expect(JSON.parse(fromFile.stdout)).toMatchObject({ valid: true, tcbStatus: expect.any(String) });
    expect(fromFile.stdout).toBe(fromFixture.stdout);
  });

  it("azure-tdx: evidence.json as the document carries it and td-quote.bin, its TD quote, which verify-evidence --tee tdx takes", async () => {
    const text = readFileSync(join(F, "azure", "tdx-vtpm", "tdx-evidence-v1.trustee.json"), "utf8");
    const files = await written(await documentOf({ type: "azure-tdx", evidence: text }));
    expect([...files.keys()]).toEqual([...EVIDENCE_OUT_FILES["azure-tdx"]]);
    expect(readFileSync(files.get("evidence.json") as string, "utf8")).toBe(text);
    const tdQuote = fixture("azure/tdx-vtpm/tdx-td-quote-v4.bin");
    expect(readFileSync(files.get("td-quote.bin") as string).equals(tdQuote)).toBe(true);
    expect(await verdictLine(["--tee", "tdx", "--quote", files.get("td-quote.bin") as string])).toEqual({
      code: 0,
      line: "tdx: VALID",
    });
  });

  it("azure-snp: evidence.json, which verifies as the fixture does", async () => {
    const path = join(F, "azure", "snp-vtpm", "genoa-evidence.trustee.json");
    const text = readFileSync(path, "utf8");
    const files = await written(await documentOf({ type: "azure-snp", evidence: text }));
    expect([...files.keys()]).toEqual([...EVIDENCE_OUT_FILES["azure-snp"]]);
    const at = ["--at", "2025-06-01T00:00:00Z"];
    expect(
      await verdictLine(["--tee", "azure-snp", "--evidence", files.get("evidence.json") as string, ...at]),
    ).toEqual({ code: 0, line: "azure-snp: VALID" });
  });

  it("a document whose evidence is malformed is refused with the field, expected and found", async () => {
    const document = await documentOf({ type: "tdx", quote: "not base64url!" } as DocumentEvidence);
    await expect(evidenceOutFiles(document)).rejects.toMatchObject({
      code: "DOCUMENT_MALFORMED",
      message: expect.stringContaining("evidence.quote"),
    });
    const other = await documentOf({ type: "sgx" } as unknown as DocumentEvidence);
    await expect(evidenceOutFiles(other)).rejects.toMatchObject({
      code: "DOCUMENT_EVIDENCE_MALFORMED",
      message: 'evidence.type: expected one of sev-snp, tdx, azure-snp, azure-tdx, found "sgx"',
    });
  });
});

describe("attest's output files are written all or none", () => {
  /** The document and the SNP pair of one run, the pair's second name taken meanwhile (after the pre-check). */
  function runOutputs() {
    dir = mkdtempSync(join(tmpdir(), "cloister-evidence-out-"));
    const d = dir;
    writeFileSync(join(d, "cert.der"), "someone else's");
    return [
      { file: join(d, "document.jws"), content: "a.b.c\n", option: "--document-out" },
      { file: join(d, "report.bin"), content: new Uint8Array([1, 2, 3]), option: "--evidence-out" },
      { file: join(d, "cert.der"), content: new Uint8Array([4, 5, 6]), option: "--evidence-out" },
    ];
  }

  it("a later file that cannot be written removes the earlier ones of this run, and leaves the other's file", async () => {
    const outputs = runOutputs();
    await expect(writeOutputFiles(outputs, "refuse")).rejects.toMatchObject({
      message: expect.stringContaining("cert.der: already exists (EEXIST); pass --force"),
    });
    expect(readdirSync(dir as string)).toEqual(["cert.der"]);
    expect(readFileSync(join(dir as string, "cert.der"), "utf8")).toBe("someone else's");
  });

  it("with --force, every file is replaced and kept", async () => {
    const outputs = runOutputs();
    await writeOutputFiles(outputs, "replace");
    for (const { file } of outputs) expect(existsSync(file)).toBe(true);
    expect([...readFileSync(join(dir as string, "cert.der"))]).toEqual([4, 5, 6]);
  });
});
