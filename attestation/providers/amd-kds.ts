/**
 * The VCEK of an SEV-SNP guest's chip from AMD's Key Distribution Service, for hosts that put no
 * certificate table in the extended report (GCP): the enclave asks KDS for the certificate of the
 * report's product, CHIP_ID and REPORTED_TCB and serves it in its document as the endorsement key.
 *
 * The fetch needs no trust, so a plain-HTTP cache or proxy is as good as AMD's HTTPS service:
 * clients verify the certificate's chain to the pinned AMD root and the report's signature under
 * it, so a wrong or forged certificate makes them refuse the enclave and cannot make them accept
 * one. The enclave checks only that the certificate's key verifies the report's signature, so that
 * a wrong cache or --snp-product stops the boot with a reason. The fetch is bounded (a timeout, a
 * size limit) and made at boot, once per chip and TCB; a failure stops the boot (it is not kept:
 * a restarted enclave asks again).
 */

import { isAllZero } from "../bytes.ts";
import { ConfigurationError, EvidenceError } from "../errors.ts";
import { parseSnpReport, SNP_PRODUCTS, type SnpProduct, type SnpReport } from "../snp/parse.ts";
import { AMD_KDS_URL, cachedVcekFetcher, reportSignedBy, snpReportUnsigned } from "../snp/verify.ts";
import { describeUrlText } from "../url-text.ts";
import { parseCertificate, parseCertificateBytes } from "../x509.ts";
import { FetchProblem, fetchBounded } from "./bounded-fetch.ts";

/** The environment variable that replaces AMD_KDS_URL (a cache or proxy); `--kds-url` wins over it. */
export const KDS_URL_ENV = "CLOISTER_KDS_URL";
export const KDS_TIMEOUT_MS = 10_000;
/** A VCEK is about 1.4 KB of DER (or 2 KB of PEM from a cache); anything far larger is not one. */
export const MAX_VCEK_BYTES = 16 * 1024;

export interface KdsVcekOptions {
  /** KDS base URL (default AMD_KDS_URL); `/vcek/v1/…` is appended. `what` names where it came from. */
  readonly baseUrl?: { readonly url: string; readonly what: string };
  /** The product when the report cannot tell it: version 2 reports carry no CPUID. */
  readonly product?: SnpProduct;
  readonly timeoutMs?: number;
  readonly fetch?: typeof fetch;
}

export interface KdsVcekSource {
  /** The VCEK (DER) for the chip and TCB of `report` (the raw 1184-byte SNP report). */
  vcekFor(report: Uint8Array): Promise<Uint8Array>;
}

export function kdsVcekSource(options: KdsVcekOptions = {}): KdsVcekSource {
  const base = kdsBaseUrl(options.baseUrl);
  const timeoutMs = options.timeoutMs ?? KDS_TIMEOUT_MS;
  const doFetch = options.fetch ?? fetch;
  const fetcher = cachedVcekFetcher((url) => getVcek(url, timeoutMs, doFetch), 8, base);
  return {
    async vcekFor(bytes) {
      const report = parseSnpReport(bytes);
      refuseUnsignedSnpReport(report);
      if (report.signingKey !== "VCEK") {
        throw new EvidenceError(
          "SNP_NO_ENDORSEMENT_KEY",
          "the report is signed with the VLEK, which AMD KDS serves only to the cloud provider (the host must supply it in the table); expected a VCEK-signed report to fetch its VCEK from AMD KDS",
        );
      }
      if (isAllZero(report.chipId)) {
        throw new EvidenceError(
          "SNP_KDS_CHIP_ID_MASKED",
          "CHIP_ID: expected this chip's ID, found all zero: the host masks it (MASK_CHIP_ID), so AMD KDS cannot be asked for this chip's VCEK, and no VCEK could be tied to the report (clients refuse a VCEK-signed report with a zero CHIP_ID): the host must sign with a VLEK (in the table) or unmask CHIP_ID",
        );
      }
      const product = report.product ?? options.product;
      if (product === undefined) {
        throw new ConfigurationError(
          "SNP_KDS_PRODUCT_UNKNOWN",
          `${
            report.cpuid === null
              ? `the report (version ${report.version}) does not say the processor (no CPUID before version 3)`
              : `the report's CPUID (family 0x${hex2(report.cpuid.family)}, model 0x${hex2(report.cpuid.model)}) is not a processor this version knows the AMD KDS product of (${SNP_PRODUCTS.join(", ")})`
          }; expected --snp-product ${SNP_PRODUCTS.join("|")} to ask AMD KDS for its VCEK`,
        );
      }
      // A certificate that does not sign this report (a wrong cache, a wrong --snp-product) would be
      // served to every client, which would refuse it: the boot stops here instead, naming the URL.
      return fetcher.fetchVcek(product, report.chipId, report.reportedTcb, async (vcek, url) => {
        if (!(await reportSignedBy(report, parseCertificate(vcek)))) {
          throw new EvidenceError(
            "SNP_NO_ENDORSEMENT_KEY",
            `AMD KDS gave no VCEK for this report: GET ${url}: the certificate it returned does not sign this report (its key does not verify the report's signature; is the URL a cache of another chip or TCB, or --snp-product wrong?)`,
          );
        }
      });
    },
  };
}

const hex2 = (n: number) => n.toString(16).padStart(2, "0");

/**
 * Throws SNP_REPORT_UNSIGNED for a report no key signed (SIGNING_KEY 7, or MASK_CHIP_KEY set): no
 * certificate can verify it and every client would refuse it, so the boot stops before looking for one.
 */
export function refuseUnsignedSnpReport(report: SnpReport): void {
  const unsigned = snpReportUnsigned(report);
  if (unsigned !== null) {
    throw new EvidenceError(
      "SNP_REPORT_UNSIGNED",
      `SEV-SNP: ${unsigned}; no VCEK or VLEK can verify it and clients refuse it: clear the host's MaskChipKey (SNP_CONFIG) so the firmware signs reports`,
    );
  }
}

/**
 * The KDS base URL without a trailing slash; http(s) only, no query or fragment, no user or
 * password (SNP_KDS_URL_INVALID). Exported so the boot checks it before anything slow.
 */
export function kdsBaseUrl(given: KdsVcekOptions["baseUrl"]): string {
  if (given === undefined) return AMD_KDS_URL;
  let url: URL | null = null;
  try {
    url = new URL(given.url);
  } catch {
    // reported below
  }
  if (url !== null && (url.username !== "" || url.password !== "")) {
    // The credentials would be dropped from every request (the URL is rebuilt from its origin), and
    // are not repeated here, where they would reach the log.
    throw new ConfigurationError(
      "SNP_KDS_URL_INVALID",
      `${given.what}: expected a URL without a user name or password (they would not be sent: the KDS cache must answer without them); the URL given has them, not shown`,
    );
  }
  if (url === null || (url.protocol !== "https:" && url.protocol !== "http:") || url.search !== "" || url.hash !== "") {
    throw new ConfigurationError(
      "SNP_KDS_URL_INVALID",
      `${given.what}: expected an http(s) URL without query or fragment (a KDS cache serving /vcek/v1/…), found ${describeUrlText(given.url)}`,
    );
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, "")}`;
}

async function getVcek(url: string, timeoutMs: number, doFetch: typeof fetch): Promise<Uint8Array> {
  const failed = (problem: string, cause?: unknown) =>
    new EvidenceError("SNP_NO_ENDORSEMENT_KEY", `AMD KDS gave no VCEK: GET ${url}: ${problem}`, { cause });
  let body: Uint8Array;
  try {
    body = await fetchBounded(doFetch, url, {}, timeoutMs, MAX_VCEK_BYTES);
  } catch (error) {
    if (!(error instanceof FetchProblem)) throw error;
    throw failed(error.message, error.cause);
  }
  try {
    return parseCertificateBytes(body).der;
  } catch (error) {
    throw failed(`expected a certificate (DER or PEM), found ${body.length} bytes that are not one`, error);
  }
}
