/**
 * `--tee snp` where the host supplies no certificate table (GCP): the enclave fetches the VCEK
 * from AMD KDS, here a loopback server standing in for it, over the configfs-tsm emulator with a
 * real GCP report. No test reaches AMD: every evidence source gets a loopback KDS URL.
 */
import { readFileSync } from "node:fs";
import * as fs from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { base64url } from "jose";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { toHex } from "../../attestation/bytes.ts";
import { verifyDocumentEvidence } from "../../attestation/evidence.ts";
import { kdsVcekSource } from "../../attestation/providers/amd-kds.ts";
import { SNP_CERT_GUIDS } from "../../attestation/providers/snp-cert-table.ts";
import { AMD_ROOTS } from "../../attestation/roots/amd.ts";
import { parseSnpReport } from "../../attestation/snp/parse.ts";
import { parseCertificateBytes } from "../../attestation/x509.ts";
import { createEvidenceSource, type EvidenceSourceOptions } from "../../enclave/tee.ts";
import { rejection } from "../helpers/attestation.ts";
import { encodeCertificateTable, TsmEmulator } from "../providers/tsm-emulator.ts";

const FIXTURES = new URL("../fixtures/attestation/snp/", import.meta.url);
const read = (name: string) => new Uint8Array(readFileSync(new URL(name, FIXTURES)));
const GCP_REPORT = read("milan-gcp-v5-report.bin");
const GCP_VCEK = parseCertificateBytes(read("milan-gcp-v5-vcek.pem")).der;
const REPORT_DATA = new Uint8Array(64).fill(7);

let dir: string;
let server: Server;
let kdsUrl: string;
let requests: string[];
let answer: (request: IncomingMessage, response: ServerResponse) => void;

beforeEach(async () => {
  dir = await fs.mkdtemp(join(tmpdir(), "cloister-kds-"));
  requests = [];
  answer = (_, response) => {
    response.writeHead(200, { "content-type": "application/x-x509-ca-cert" }).end(GCP_VCEK);
  };
  server = createServer((request, response) => {
    requests.push(request.url ?? "");
    answer(request, response);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  kdsUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterEach(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await fs.rm(dir, { recursive: true, force: true });
});

/** An SNP evidence source over the emulator, its report always `report`, its auxblob `auxblob`. */
async function snpSource(
  report: Uint8Array,
  options: EvidenceSourceOptions = {},
  auxblob: Uint8Array | null = null,
): Promise<Awaited<ReturnType<typeof createEvidenceSource>>> {
  const emulator = await TsmEmulator.create(dir, { provider: "sev_guest", makeReport: () => report, auxblob });
  return createEvidenceSource("snp", {
    env: {},
    kdsUrl,
    ...options,
    configfsTsm: { root: emulator.root, fs: emulator },
  });
}

describe("--tee snp with no certificate table: the VCEK from AMD KDS", () => {
  it("fetches the VCEK for the report's product, CHIP_ID and REPORTED_TCB once per boot; clients verify it under AMD's root", async () => {
    const source = await snpSource(GCP_REPORT);
    const evidence = await source.collect(REPORT_DATA);
    const report = parseSnpReport(GCP_REPORT);
    expect(requests).toEqual([`/vcek/v1/Milan/${toHex(report.chipId)}?blSPL=4&teeSPL=0&snpSPL=27&ucodeSPL=222`]);
    expect(evidence).toEqual({
      type: "sev-snp",
      report: base64url.encode(GCP_REPORT),
      endorsementKey: base64url.encode(GCP_VCEK),
    });
    const verified = await verifyDocumentEvidence(
      evidence,
      { snp: AMD_ROOTS, tdx: [] },
      new Date("2026-01-01T00:00:00Z"),
    );
    expect(verified.type).toBe("sev-snp");
    await source.collect(REPORT_DATA);
    expect(requests).toHaveLength(1);
  });

  it("takes the KDS base URL from CLOISTER_KDS_URL when --kds-url is not given (a path prefix kept)", async () => {
    const source = await snpSource(GCP_REPORT, { kdsUrl: undefined, env: { CLOISTER_KDS_URL: `${kdsUrl}/amd/` } });
    await source.collect(REPORT_DATA);
    expect(requests[0]).toMatch(/^\/amd\/vcek\/v1\/Milan\//);
  });

  it("uses the host's table when it has a VCEK, and asks KDS nothing", async () => {
    const table = encodeCertificateTable([{ guid: SNP_CERT_GUIDS.VCEK, data: GCP_VCEK }]);
    const source = await snpSource(GCP_REPORT, {}, table);
    expect((await source.collect(REPORT_DATA)).type).toBe("sev-snp");
    expect(requests).toEqual([]);
  });

  it("names the auxblob, the URL tried and the status when KDS has no certificate, and keeps no failure (a second collect asks again)", async () => {
    answer = (_, response) => {
      response.writeHead(404).end("Not Found");
    };
    const source = await snpSource(GCP_REPORT);
    const error = await rejection(source.collect(REPORT_DATA));
    expect(error.code).toBe("SNP_NO_ENDORSEMENT_KEY");
    expect(error.message).toContain("auxblob");
    expect(error.message).toContain(`GET ${kdsUrl}/vcek/v1/Milan/`);
    expect(error.message).toContain("expected status 200, found 404");
    expect(error.message).toContain("--kds-url");
    expect(error.message).toContain("snphost import");
    await rejection(source.collect(REPORT_DATA));
    expect(requests).toHaveLength(2);
  });

  it("refuses a body past the size bound and one that is not a certificate", async () => {
    answer = (_, response) => {
      response.writeHead(200).end(new Uint8Array(20_000));
    };
    const tooLarge = await rejection((await snpSource(GCP_REPORT)).collect(REPORT_DATA));
    expect(tooLarge.code).toBe("SNP_NO_ENDORSEMENT_KEY");
    expect(tooLarge.message).toContain("expected at most 16384 bytes, found more");
    answer = (_, response) => {
      response.writeHead(200).end("<html>proxy login</html>");
    };
    const notCertificate = await rejection((await snpSource(GCP_REPORT)).collect(REPORT_DATA));
    expect(notCertificate.message).toContain("expected a certificate (DER or PEM), found 24 bytes");
  });

  it("refuses a VCEK that does not sign the report (another chip's, from a wrong cache), naming the URL, and keeps none", async () => {
    answer = (_, response) => {
      response.writeHead(200).end(read("milan-gosevguest-v2-vcek.der")); // a real Milan VCEK, another chip's
    };
    const source = await snpSource(GCP_REPORT);
    const error = await rejection(source.collect(REPORT_DATA));
    expect(error.code).toBe("SNP_NO_ENDORSEMENT_KEY");
    expect(error.message).toContain(`GET ${kdsUrl}/vcek/v1/Milan/`);
    expect(error.message).toContain("the certificate it returned does not sign this report");
    answer = (_, response) => {
      response.writeHead(200).end(GCP_VCEK);
    };
    expect(await source.collect(REPORT_DATA)).toMatchObject({ endorsementKey: base64url.encode(GCP_VCEK) });
    expect(requests).toHaveLength(2);
  });

  it("cannot fetch for a masked CHIP_ID (all zero: the host's MASK_CHIP_ID, which no bit signals) and asks nothing", async () => {
    const masked = new Uint8Array(GCP_REPORT);
    masked.fill(0, 0x1a0, 0x1e0); // CHIP_ID zeroed, as the firmware does under MASK_CHIP_ID
    const error = await rejection((await snpSource(masked)).collect(REPORT_DATA));
    expect(error.code).toBe("SNP_KDS_CHIP_ID_MASKED");
    expect(error.message).toContain("auxblob");
    expect(error.message).toContain("CHIP_ID: expected this chip's ID, found all zero");
    expect(error.message).toContain("must sign with a VLEK");
    expect(requests).toEqual([]);
  });

  it("refuses an unsigned report (MASK_CHIP_KEY set, or SIGNING_KEY none) as such, with or without a table, and asks nothing", async () => {
    const maskChipKey = new Uint8Array(GCP_REPORT);
    maskChipKey[0x48] = 0x02; // SIGNER_INFO: MASK_CHIP_KEY; the firmware writes a zero SIGNATURE
    maskChipKey.fill(0, 0x2a0, 0x4a0);
    const none = new Uint8Array(GCP_REPORT);
    none[0x48] = 7 << 2; // SIGNING_KEY 7
    const table = encodeCertificateTable([{ guid: SNP_CERT_GUIDS.VCEK, data: GCP_VCEK }]);
    for (const [report, auxblob, says] of [
      [maskChipKey, null, "MASK_CHIP_KEY (SIGNER_INFO bit 1): expected clear, found set"],
      [maskChipKey, table, "MASK_CHIP_KEY (SIGNER_INFO bit 1): expected clear, found set"],
      [none, null, "SIGNING_KEY: expected 0 (VCEK) or 1 (VLEK), found 7 (none)"],
    ] as const) {
      const error = await rejection((await snpSource(report, {}, auxblob)).collect(REPORT_DATA));
      expect(error.code).toBe("SNP_REPORT_UNSIGNED");
      expect(error.message).toContain(says);
      await expect(kdsVcekSource({ baseUrl: { url: kdsUrl, what: "test" } }).vcekFor(report)).rejects.toMatchObject({
        code: "SNP_REPORT_UNSIGNED",
      });
    }
    expect(requests).toEqual([]);
  });

  it("asks for --snp-product when a version 2 report cannot tell the processor, and uses it", async () => {
    const v2 = read("milan-gosevguest-v2-report.bin");
    answer = (_, response) => {
      response.writeHead(200).end(read("milan-gosevguest-v2-vcek.der"));
    };
    const error = await rejection((await snpSource(v2)).collect(REPORT_DATA));
    expect(error.code).toBe("SNP_KDS_PRODUCT_UNKNOWN");
    expect(error.message).toContain("--snp-product Milan|Genoa|Turin");
    await (await snpSource(v2, { snpProduct: "Milan" })).collect(REPORT_DATA);
    expect(requests).toEqual([expect.stringMatching(/^\/vcek\/v1\/Milan\/[0-9a-f]{128}\?blSPL=/)]);
  });

  it("names the family and model of a version 3+ report whose CPUID it cannot map to a KDS product, and asks nothing", async () => {
    const unknown = new Uint8Array(GCP_REPORT);
    unknown[0x188] = 0x1a; // CPUID_FAM_ID
    unknown[0x189] = 0x12; // CPUID_MOD_ID
    const error = await rejection((await snpSource(unknown)).collect(REPORT_DATA));
    expect(error.code).toBe("SNP_KDS_PRODUCT_UNKNOWN");
    expect(error.message).toContain("the report's CPUID (family 0x1a, model 0x12) is not a processor");
    expect(error.message).not.toContain("no CPUID");
    expect(requests).toEqual([]);
  });

  it("refuses a KDS URL that is not http(s), and the KDS options with another --tee", async () => {
    expect((await rejection(snpSource(GCP_REPORT, { kdsUrl: "ftp://kds.internal" }))).code).toBe("SNP_KDS_URL_INVALID");
    const fromEnv = await rejection(snpSource(GCP_REPORT, { kdsUrl: undefined, env: { CLOISTER_KDS_URL: "kds" } }));
    expect(fromEnv.message).toContain("CLOISTER_KDS_URL");
    expect((await rejection(createEvidenceSource("tdx", { kdsUrl }))).code).toBe("SNP_KDS_OPTION_UNUSED");
  });

  it("refuses a KDS URL with a user name or password without repeating them, and asks nothing", async () => {
    const withCredentials = kdsUrl.replace("http://", "http://kds-user:s3cret-pw@");
    const error = await rejection(snpSource(GCP_REPORT, { kdsUrl: withCredentials }));
    expect(error.code).toBe("SNP_KDS_URL_INVALID");
    expect(error.message).toContain("without a user name or password");
    expect(error.message).not.toContain("kds-user");
    expect(error.message).not.toContain("s3cret-pw");
    const fromEnv = await rejection(
      snpSource(GCP_REPORT, { kdsUrl: undefined, env: { CLOISTER_KDS_URL: withCredentials } }),
    );
    expect(fromEnv.code).toBe("SNP_KDS_URL_INVALID");
    expect(fromEnv.message).not.toContain("s3cret-pw");
    const notHttp = await rejection(snpSource(GCP_REPORT, { kdsUrl: "ftp://kds-user:s3cret-pw@kds.internal" }));
    expect(notHttp.message).not.toContain("s3cret-pw");
    // Without a scheme, `kds-user:s3cret-pw@…` parses with the scheme `kds-user:` and no user name;
    // a token in a query is as secret: neither is repeated.
    for (const given of ["kds-user:s3cret-pw@kds.internal", `${kdsUrl}/?token=s3cret-pw`]) {
      const refused = await rejection(snpSource(GCP_REPORT, { kdsUrl: given }));
      expect(refused.code).toBe("SNP_KDS_URL_INVALID");
      expect(refused.message).not.toContain("s3cret-pw");
    }
    expect(requests).toEqual([]);
  });

  it("gives up on a KDS that does not answer within the timeout", async () => {
    answer = () => undefined; // never answers
    const kds = kdsVcekSource({ baseUrl: { url: kdsUrl, what: "test" }, timeoutMs: 200 });
    const error = await rejection(kds.vcekFor(GCP_REPORT));
    expect(error.code).toBe("SNP_NO_ENDORSEMENT_KEY");
    expect(error.message).toContain("no answer in 200 ms");
  });
});

describe("--tee snp with the host's certificate table: the key the report's SIGNING_KEY names", () => {
  const AWS_REPORT = read("milan-aws-vlek-v3-report.bin"); // SIGNING_KEY = VLEK
  const AWS_VLEK = read("milan-aws-vlek.der");

  it("serves the table's VLEK for a VLEK-signed report when the table holds a VCEK too, and asks KDS nothing", async () => {
    const table = encodeCertificateTable([
      { guid: SNP_CERT_GUIDS.VCEK, data: GCP_VCEK }, // a VCEK the host's table also holds
      { guid: SNP_CERT_GUIDS.VLEK, data: AWS_VLEK },
    ]);
    const evidence = await (await snpSource(AWS_REPORT, {}, table)).collect(REPORT_DATA);
    expect(evidence).toMatchObject({ endorsementKey: base64url.encode(AWS_VLEK) });
    const verified = await verifyDocumentEvidence(
      evidence,
      { snp: AMD_ROOTS, tdx: [] },
      new Date("2025-06-01T00:00:00Z"),
    );
    expect(verified.details).toMatchObject({ signingKey: "VLEK" });
    expect(requests).toEqual([]);
  });

  it("refuses a table whose entry of the report's kind does not sign the report, naming it, and asks KDS nothing", async () => {
    // A VLEK-signed report with the table's VLEK missing: its VCEK is not the key (KDS serves no VLEK).
    const noVlek = encodeCertificateTable([{ guid: SNP_CERT_GUIDS.VCEK, data: GCP_VCEK }]);
    const missing = await rejection((await snpSource(AWS_REPORT, {}, noVlek)).collect(REPORT_DATA));
    expect(missing.code).toBe("SNP_NO_ENDORSEMENT_KEY");
    expect(missing.message).toContain("auxblob holds no VLEK");
    // A VCEK of another chip (a stale or foreign table) for a VCEK-signed report.
    const foreign = encodeCertificateTable([{ guid: SNP_CERT_GUIDS.VCEK, data: read("milan-gosevguest-v2-vcek.der") }]);
    const error = await rejection((await snpSource(GCP_REPORT, {}, foreign)).collect(REPORT_DATA));
    expect(error.code).toBe("SNP_NO_ENDORSEMENT_KEY");
    expect(error.message).toContain(
      "the report's SIGNING_KEY is the VCEK; expected the VCEK in the host's certificate table (configfs-tsm's auxblob) to verify the report's signature",
    );
    expect(error.message).toContain("snphost import");
    expect(requests).toEqual([]);
  });
});
