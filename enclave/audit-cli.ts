/** `cloister audit ...`: checks an enclave's audit log. The action imports its implementation lazily. */
import type { Command } from "commander";
import {
  API_KEY_FILE_HELP,
  type ClientConnectionOptions,
  ENCLAVE_KEY_ID_HELP,
  enclaveKeyIdOption,
} from "../client/cli/commands.ts";
import { examples } from "../client/cli/help-examples.ts";
import { intOption } from "../client/cli/output.ts";

export interface AuditVerifyCommandOptions {
  log: string;
  key?: string;
  document?: string;
  checkpoint?: string;
  count?: number;
  lastHash?: string;
  json?: boolean;
}

export interface AuditFindCommandOptions {
  log: string;
  key?: string;
  document?: string;
  chatJson?: string;
  requestIdHash?: string;
  openingFile?: string;
  promptFile?: string;
  answerFile?: string;
  json?: boolean;
}

export function registerAuditCommands(program: Command): void {
  const audit = program
    .command("audit")
    .addHelpText(
      "after",
      examples(
        "cloister audit checkpoint --url http://127.0.0.1:8080 --policy .cloister/policy.json --out checkpoint.json",
        'cloister audit verify --log .cloister/audit/BOOT.jsonl --key "$(jq -r .signingKey attest.json)" --checkpoint checkpoint.json   # attest.json: cloister attest --url … --policy … --json > attest.json',
      ),
    )
    .description(
      "enclave audit logs: verify the signed, hash-chained records the host stores, find your own request's record, fetch a signed checkpoint",
    );

  audit
    .command("verify")
    .addHelpText(
      "after",
      examples(
        'cloister audit verify --log .cloister/audit/BOOT.jsonl --key "$(jq -r .signingKey attest.json)" --checkpoint checkpoint.json   # attest.json: cloister attest --url … --policy … --json > attest.json; BOOT: the first 16 digits of its documentDigest',
      ),
    )
    .description(
      "verify an audit log (JSON lines) against the enclave's Ed25519 key: every record signed, none removed, reordered, duplicated or altered; exit 0 iff valid",
    )
    .requiredOption("--log <file>", "the audit log (one record per line, as the host stores it)")
    .option(
      "--key <hex>",
      "the enclave's Ed25519 public key (64 hex characters), from a verification you trust (cloister attest --json: signingKey; not the host's .key file)",
    )
    .option("--document <file>", "take the key from an attestation document's sig_jwk (compact JWS)")
    .option("--checkpoint <file>", "a signed checkpoint from the enclave: the log must reach it (detects cut-off ends)")
    .option(
      "--count <n>",
      "the log must hold at least this many records",
      intOption("--count", 0, Number.MAX_SAFE_INTEGER),
    )
    .option("--last-hash <hex>", "with --count: the hash of record seq count-1")
    .option("--json", "print the result as JSON")
    .action(async (options: AuditVerifyCommandOptions) => {
      const { auditVerifyCommand } = await import("./audit-cli-impl.ts");
      await auditVerifyCommand(options);
    });

  audit
    .command("find")
    .addHelpText(
      "after",
      `${examples(
        "cloister audit find --log .cloister/audit/BOOT.jsonl --chat-json answer.json --prompt-file question.txt   # answer.json: chat --json; BOOT: the first 16 digits of its enclave field (the attestation document's digest)",
      )}

A request id sent more than once (the SDK never does) has a record each time: every record with its
hash is shown, in log order, each checked against the text given; the command succeeds when one of
them is about that text (with --json: "record" is that one, "allFound" lists them all).`,
    )
    .description(
      "verify an audit log, find one request's record (every record with its request id hash, in log order), and (with its opening) check that the record is about your prompt and answer",
    )
    .requiredOption("--log <file>", "the audit log (one record per line, as the host stores it)")
    .option("--key <hex>", "the enclave's Ed25519 public key (default with --chat-json: its signingKey)")
    .option("--document <file>", "take the key from an attestation document's sig_jwk (compact JWS)")
    .option(
      "--chat-json <file>",
      "the output of cloister chat --json: its audit.requestIdHash, audit.opening and answer text",
    )
    .option("--request-id-hash <hex>", "the record to find (instead of --chat-json)")
    .option("--opening-file <file>", "the record's opening key, hex (instead of --chat-json; keep it private)")
    .option(
      "--prompt-file <file>",
      "the prompt exactly as sent, before any PII redaction: the file's bytes, a final newline included, as chat --prompt-file sends them (chat: the messages' contents joined by newlines)",
    )
    .option("--answer-file <file>", "the answer's exact text (default with --chat-json: its text)")
    .option("--json", "print the result as JSON")
    .action(async (options: AuditFindCommandOptions) => {
      const { auditFindCommand } = await import("./audit-cli-impl.ts");
      await auditFindCommand(options);
    });

  audit
    .command("checkpoint")
    .addHelpText(
      "after",
      examples(
        "cloister audit checkpoint --url http://127.0.0.1:8080 --policy .cloister/policy.json --out checkpoint.json",
        "cloister audit checkpoint --url http://127.0.0.1:8080 --policy .cloister/policy.json --json",
        "cloister audit checkpoint --url http://127.0.0.1:8080 --policy .cloister/policy.json --enclave 0123456789abcdef0123456789abcdef --out checkpoint-0123456789abcdef.json   # one pool member's boot",
      ),
    )
    .description(
      "verify the enclave behind a host, then fetch and verify a fresh signed head of its audit log (count and last record hash) for `audit verify --checkpoint`",
    )
    .requiredOption("--url <url>", "the host's URL (printed by cloister up)")
    .requiredOption("--policy <file>", "client policy file (cloister up writes .cloister/policy.json)")
    .option("--api-key-file <file>", API_KEY_FILE_HELP)
    .option(
      "--out <file>",
      "write the checkpoint line to this file (default: print it on stdout); one that exists is refused unless --force",
    )
    .option("--force", "with --out: replace the file if it exists (a fresher checkpoint over an older one)")
    .option("--json", "print the verified checkpoint as JSON")
    .option("--enclave <key-id>", ENCLAVE_KEY_ID_HELP, enclaveKeyIdOption)
    .action(async (options: ClientConnectionOptions & { out?: string; force?: boolean }) => {
      const { runAuditCheckpoint } = await import("../client/cli/run-client.ts");
      await runAuditCheckpoint(options);
    });
}
