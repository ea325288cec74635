/** `cloister` sub-commands of the attestation/ party. Actions import their implementation lazily. */
import { type Command, Option } from "commander";
import { examples } from "../client/cli/help-examples.ts";
import { choiceOption, optionsUsageError } from "../client/cli/output.ts";
import { timeOption } from "../client/cli/time-option.ts";

/**
 * Kept in sync with VERIFY_EVIDENCE_TEES in verify-evidence-cli.ts (not imported: keeps this file light),
 * plus "maa" (an MAA token, handled by azure/cli-verify.ts).
 */
const TEES = ["snp", "tdx", "azure-snp", "azure-tdx", "maa"] as const;

/** The captured hardware evidence in the repository (README "How verification works"), for --help's examples. */
const FIXTURES = "test/fixtures/attestation";

export function registerAttestationCommands(program: Command): void {
  program
    .command("verify-evidence")
    .addHelpText(
      "after",
      // Run as pasted from the repository root (README's captured hardware evidence, at the times its
      // provenance notes give; test/docs/help-examples-paste.test.ts runs them), but the last, which
      // says that its files are yours.
      examples(
        `cloister verify-evidence --tee snp --report ${FIXTURES}/snp/milan-gcp-v5-report.bin --cert ${FIXTURES}/snp/milan-gcp-v5-vcek.pem --at 2026-01-01T00:00:00Z`,
        `cloister verify-evidence --tee tdx --quote ${FIXTURES}/tdx/quote-v4-trustee.bin --collateral ${FIXTURES}/tdx/collateral --at 2023-07-01T00:00:00Z --json`,
        `cloister verify-evidence --tee azure-snp --evidence ${FIXTURES}/azure/snp-vtpm/genoa-evidence.trustee.json --at 2025-06-01T00:00:00Z --json`,
        "cloister verify-evidence --tee snp --report report.bin --cert vcek.pem --policy policy.json   # your own evidence and policy",
      ),
    )
    .description(
      "verify TEE evidence offline against the pinned vendor roots: an SEV-SNP report + VCEK/VLEK, a TDX quote + collateral, or Azure CVM evidence / an MAA token; exit 0 only when valid",
    )
    .addOption(
      new Option("--tee <tee>", `evidence type: ${TEES.join(", ")}`)
        .argParser(choiceOption("--tee", TEES))
        .makeOptionMandatory(),
    )
    .option("--report <file>", "snp: the ATTESTATION_REPORT (1184 bytes, binary)")
    .option("--cert <file>", "snp: the VCEK or VLEK certificate (PEM or DER)")
    .option("--quote <file>", "tdx: the quote (binary)")
    .option(
      "--collateral <dir>",
      "tdx: a directory of Intel PCS collateral, as cloister enclave --tdx-collateral takes it (tcbinfo-*.json, qeidentity-*.json, their issuer-chain .pem files, CRLs as *.der); without it the TCB status and revocation are not checked",
    )
    .addOption(
      new Option(
        "--collateral-signer-validity <mode>",
        "tdx: when the collateral signer certificate must be valid: strict (at --at), at-issue-date, accept-expired-signer",
      )
        .argParser(
          choiceOption("--collateral-signer-validity", ["strict", "at-issue-date", "accept-expired-signer"] as const),
        )
        .default("strict"),
    )
    .option("--accept-stale-collateral", "tdx: accept collateral and CRLs past their nextUpdate (reported as stale)")
    .option("--evidence <file>", "azure-*: the CVM evidence (HCL report + vTPM quote)")
    .option(
      "--nonce <hex>",
      "azure-*: the expected vTPM quote qualifying data (hex); without it extraData is reported, not checked",
    )
    .option("--token <file>", "maa: a Microsoft Azure Attestation token (JWT)")
    .option("--jwks <file>", "maa: the MAA signing keys (JWKS JSON, e.g. the instance's /certs response)")
    .option(
      "--issuer <url>",
      "maa: the MAA instance URL the token's iss must equal; without it iss is checked only by --policy's maa.issuers, else reported, not checked",
    )
    .option(
      "--at <time>",
      "verification time, ISO-8601 in UTC: YYYY-MM-DDTHH:MM:SSZ, or with .sss (default: now); for evidence captured earlier, a time its certificates, CRLs or token were valid (else CERT_EXPIRED, CRL_EXPIRED, MAA_TOKEN_EXPIRED)",
      timeOption("--at"),
    )
    .option(
      "--policy <file>",
      'also appraise the verified evidence against this policy (JSON): an attestation policy, or a client policy such as the .cloister/policy.json that `cloister up` writes (its attestation section is used); every field is required: docs/platforms.md, "A policy for captured evidence", shows one for a captured report',
    )
    .option("--json", "print the verdict as JSON")
    .action(async (options) => {
      const { printVerdict } = await import("./verify-evidence-cli.ts");
      const tee = options.tee as (typeof TEES)[number];
      if (options.nonce !== undefined && tee !== "azure-snp" && tee !== "azure-tdx") {
        throw optionsUsageError(`verify-evidence --tee ${tee}: --nonce does not apply to this TEE`);
      }
      if (options.issuer !== undefined && tee !== "maa") {
        throw optionsUsageError(`verify-evidence --tee ${tee}: --issuer does not apply to this TEE`);
      }
      let verifyEvidence: typeof import("./snp/cli-verify.ts")["verifyEvidence"];
      switch (tee) {
        case "snp":
          ({ verifyEvidence } = await import("./snp/cli-verify.ts"));
          break;
        case "tdx":
          ({ verifyEvidence } = await import("./tdx/cli-verify.ts"));
          break;
        case "azure-snp":
        case "azure-tdx":
        case "maa": {
          const azure = await import("./azure/cli-verify.ts");
          printVerdict(await azure.verifyEvidence(options), options);
          return;
        }
        default: {
          const { ConfigurationError } = await import("./errors.ts");
          throw new ConfigurationError(
            "TEE_NOT_AVAILABLE",
            `verify-evidence --tee ${tee}: not available in this build`,
          );
        }
      }
      printVerdict(await verifyEvidence(options), options);
    });
}
