/** `cloister attest` and `cloister chat`. */
import { readFile, writeFile } from "node:fs/promises";
import { createInterface } from "node:readline/promises";
import type { VerifiedEnclave } from "../../attestation/document.ts";
import { ClientError } from "../errors.ts";
import { parseClientPolicy } from "../policy.ts";
import { type ChatMessage, connect, type Session } from "../sdk.ts";
import { measurementNote, modelNote } from "../summary.ts";
import type { ClientConnectionOptions } from "./commands.ts";
import { printJson, UsageError } from "./output.ts";

export async function readApiKey(file: string): Promise<string> {
  const fromEnv = process.env.CLOISTER_API_KEY;
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv.trim();
  try {
    return (await readFile(file, "utf8")).trim();
  } catch (error) {
    throw new UsageError(
      `--api-key-file: cannot read "${file}" (${(error as NodeJS.ErrnoException).code ?? "error"}); set CLOISTER_API_KEY or pass --api-key-file`,
    );
  }
}

export async function open(options: ClientConnectionOptions): Promise<Session> {
  let policyText: string;
  try {
    policyText = await readFile(options.policy, "utf8");
  } catch (error) {
    throw new UsageError(
      `--policy: cannot read "${options.policy}" (${(error as NodeJS.ErrnoException).code ?? "error"})`,
    );
  }
  const policy = parseClientPolicy(policyText);
  return connect({ url: options.url, policy, apiKey: await readApiKey(options.apiKeyFile) });
}

export function enclaveSummary(enclave: VerifiedEnclave) {
  return {
    tee: enclave.tee,
    simulated: enclave.simulated,
    measurement: enclave.measurement,
    reportData: enclave.reportData,
    service: enclave.manifest.service,
    model: enclave.manifest.model,
    manifestDigest: enclave.manifestDigest,
    manifestSigner: enclave.manifest.signerThumbprint,
    documentDigest: enclave.documentDigest,
    sealingKey: Buffer.from(enclave.sealingPublicKey).toString("hex"),
    signingKey: Buffer.from(enclave.signingPublicKey).toString("hex"),
    details: enclave.details,
  };
}

export function describeEnclave(enclave: VerifiedEnclave): string {
  const s = enclaveSummary(enclave);
  return [
    `  TEE          ${s.tee}${s.simulated ? "  (SIMULATED: insecure simulator root, trusted by this policy only)" : ""}`,
    `  measurement  ${s.measurement}${measurementNote(enclave)}`,
    `  service      ${s.service.name} ${s.service.version}`,
    `  model        ${s.model.file} sha256 ${s.model.sha256}${modelNote(enclave)}`,
    `  manifest     sha256 ${s.manifestDigest}, signed by ${s.manifestSigner}`,
    `  keys         X25519 ${s.sealingKey.slice(0, 16)}…, Ed25519 ${s.signingKey.slice(0, 16)}… (bound in REPORT_DATA)`,
    "  checked      evidence chain → policy → REPORT_DATA binding → document signature → fresh nonce → manifest",
  ].join("\n");
}

export async function runAttest(options: ClientConnectionOptions & { documentOut?: string }): Promise<void> {
  try {
    const session = await open(options);
    // Only a document that passed verification is saved.
    if (options.documentOut !== undefined) await writeFile(options.documentOut, `${session.document}\n`);
    if (options.json === true) printJson({ valid: true, ...enclaveSummary(session.enclave) });
    else process.stdout.write(`enclave verified\n${describeEnclave(session.enclave)}\n`);
  } catch (error) {
    if (options.json === true && error instanceof ClientError) {
      printJson({
        valid: false,
        kind: error.kind,
        stage: error.stage ?? null,
        code: error.code,
        reason: error.message,
      });
      process.exitCode = 1;
      return;
    }
    throw error;
  }
}

async function streamAnswer(
  session: Session,
  messages: ChatMessage[],
  options: { maxTokens?: number; seed?: number; json?: boolean },
): Promise<string> {
  let text = "";
  const generation = {
    ...(options.maxTokens === undefined ? {} : { maxTokens: options.maxTokens }),
    ...(options.seed === undefined ? {} : { seed: options.seed }),
  };
  const signingKey = () => Buffer.from(session.enclave.signingPublicKey).toString("hex");
  try {
    for await (const event of session.chat(messages, generation)) {
      if (event.type === "text") {
        text += event.text;
        if (options.json !== true) process.stdout.write(event.text);
      } else if (options.json === true) {
        printJson({
          text,
          usage: event.usage,
          finishReason: event.finishReason,
          enclave: session.enclave.documentDigest,
          // Verified already; keep it (with signingKey) to show later what the enclave answered.
          receipt: event.receipt,
          // Finds and opens this request's record in the audit log the host stores (cloister audit find).
          audit: event.audit,
          signingKey: signingKey(),
        });
      } else {
        process.stdout.write("\n");
      }
    }
  } catch (error) {
    // With --json a refused or failed request is one JSON object too; a refusal the enclave
    // recorded carries its audit reference, so `cloister audit find --chat-json` shows the record
    // of the refusal is about this prompt. No partial text: it was not a whole answer.
    if (options.json !== true || !(error instanceof ClientError)) throw error;
    printJson({
      error: { kind: error.kind, code: error.code, reason: error.message },
      enclave: session.enclave.documentDigest,
      audit: error.audit,
      signingKey: signingKey(),
    });
    process.exitCode = 1;
  }
  return text;
}

export async function runChat(
  prompt: string | undefined,
  options: ClientConnectionOptions & { maxTokens?: number; seed?: number },
): Promise<void> {
  if (prompt === undefined && !process.stdin.isTTY) {
    throw new UsageError("chat: give a PROMPT argument, or run on a terminal for an interactive session");
  }
  const session = await open(options);
  if (prompt !== undefined) {
    await streamAnswer(session, [{ role: "user", content: prompt }], options);
    return;
  }
  process.stderr.write(`${describeEnclave(session.enclave)}\nType a message; an empty line or Ctrl-D ends.\n`);
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  const history: ChatMessage[] = [];
  try {
    for (;;) {
      let line: string;
      try {
        line = await rl.question("you> ");
      } catch {
        break;
      }
      if (line.trim() === "") break;
      history.push({ role: "user", content: line });
      process.stdout.write("enclave> ");
      history.push({ role: "assistant", content: await streamAnswer(session, history, options) });
    }
  } finally {
    rl.close();
  }
}

/**
 * `cloister audit checkpoint`: verifies the enclave, then asks it (through the host) for the signed
 * head of its audit log bound to a fresh nonce, and writes the verified line where
 * `cloister audit verify --checkpoint` reads it.
 */
export async function runAuditCheckpoint(options: ClientConnectionOptions & { out?: string }): Promise<void> {
  const session = await open(options);
  const checkpoint = await session.auditCheckpoint();
  if (options.out !== undefined) {
    try {
      await writeFile(options.out, `${checkpoint.line}\n`, { flag: "wx" });
    } catch (error) {
      throw new UsageError(
        `--out: cannot create "${options.out}" (${(error as NodeJS.ErrnoException).code ?? "error"}); it must not exist yet`,
      );
    }
  }
  if (options.json === true) {
    printJson({
      valid: true,
      count: checkpoint.count,
      lastRecordHash: checkpoint.lastRecordHash,
      time: checkpoint.time,
      signingKey: checkpoint.signingPublicKey,
      documentDigest: session.enclave.documentDigest,
      checkpoint: checkpoint.line,
    });
    return;
  }
  const summary = [
    `audit checkpoint verified: ${checkpoint.count} record(s) written by the enclave as of ${checkpoint.time}`,
    `  last record hash  ${checkpoint.lastRecordHash}`,
    `  signed by         Ed25519 ${checkpoint.signingPublicKey} (attested, bound in REPORT_DATA)`,
    "  fresh             carries this request's random nonce",
  ];
  if (options.out === undefined) {
    process.stderr.write(`${summary.join("\n")}\n`);
    process.stdout.write(`${checkpoint.line}\n`);
  } else {
    summary.push(
      `written to ${options.out}; check a stored log with:`,
      `  cloister audit verify --log FILE --key ${checkpoint.signingPublicKey} --checkpoint ${options.out}`,
    );
    process.stdout.write(`${summary.join("\n")}\n`);
  }
}
