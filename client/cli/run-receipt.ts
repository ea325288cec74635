/** `cloister receipt verify`: a receipt checked offline, under a signing key the caller trusts. */
import { readFile } from "node:fs/promises";
import { fromHex } from "../../attestation/bytes.ts";
import { SealedError, textHash, verifyReceipt } from "../../sealed/index.ts";
import { ClientError } from "../errors.ts";
import { printJson, UsageError } from "./output.ts";

async function readText(file: string, option: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (error) {
    throw new UsageError(`${option}: cannot read "${file}" (${(error as NodeJS.ErrnoException).code ?? "error"})`);
  }
}

/** The receipt line: the file itself, or the `receipt` field of `cloister chat --json` output. */
function receiptLine(text: string): string {
  const trimmed = text.trim();
  try {
    const parsed = JSON.parse(trimmed) as { receipt?: unknown; v?: unknown };
    if (typeof parsed.receipt === "string") return parsed.receipt;
  } catch {
    // not JSON: verifyReceipt says what is wrong
  }
  return trimmed;
}

export async function runReceiptVerify(options: {
  receipt: string;
  key: string;
  answerFile?: string;
  json?: boolean;
}): Promise<void> {
  if (!/^[0-9a-f]{64}$/.test(options.key)) {
    throw new UsageError(
      `--key: expected 64 lower-case hex characters (an Ed25519 public key), found ${options.key.length} characters`,
    );
  }
  const line = receiptLine(await readText(options.receipt, "--receipt"));
  const answer = options.answerFile === undefined ? null : await readText(options.answerFile, "--answer-file");
  try {
    const receipt = await verifyReceipt(line, fromHex(options.key));
    if (answer !== null && receipt.answerHash !== textHash(answer)) {
      throw new ClientError("integrity", "RECEIPT_MISMATCH", "receipt answerHash: does not match --answer-file");
    }
    const { line: _line, ...fields } = receipt;
    if (options.json === true) printJson({ valid: true, answerChecked: answer !== null, ...fields });
    else {
      process.stdout.write(
        [
          "receipt verified: signed by the given enclave key",
          `  answer       sha256 ${receipt.answerHash}${answer === null ? "" : "  (matches --answer-file)"}`,
          `  request      sha256 ${receipt.requestHash}`,
          `  finish       ${receipt.finishReason}, ${receipt.promptTokens} prompt + ${receipt.completionTokens} completion tokens`,
          `  model        sha256 ${receipt.modelSha256}`,
          `  manifest     sha256 ${receipt.manifestDigest}`,
          `  document     sha256 ${receipt.documentDigest}`,
          `  signed at    ${receipt.time}`,
          "",
        ].join("\n"),
      );
    }
  } catch (error) {
    if (!(error instanceof SealedError || error instanceof ClientError)) throw error;
    if (options.json === true) {
      printJson({ valid: false, code: error.code, reason: error.message });
      process.exitCode = 1;
      return;
    }
    throw error;
  }
}
