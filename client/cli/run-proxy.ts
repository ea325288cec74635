/** `cloister proxy`: verify the enclave, then serve the OpenAI-compatible API on 127.0.0.1. */
import { randomBytes } from "node:crypto";
import { dirname } from "node:path";
import { fileMessage, type InputBound, shellWord } from "../../attestation/bounded-read.ts";
import { privateFileUnreadable } from "../../attestation/kbs/key-file.ts";
import { closeOnSignal, DEFAULT_SHUTDOWN_GRACE_MS, listenLoopback } from "../../enclave/http.ts";
import { policyRisks } from "../policy.ts";
import { attestedModelId, createProxyApp, enclaveChangeLine, proxyTokenProblem } from "../proxy.ts";
import type { ClientConnectionOptions } from "./commands.ts";
import { loopbackListenError, outputFileErrors, UsageError, writeFileAtomically } from "./output.ts";
import { makePrivateDirectory } from "./private-directory.ts";
import { describeEnclave, open, readPolicy, readSecretFile } from "./run-client.ts";

export interface ProxyCommandOptions extends ClientConnectionOptions {
  port: number;
  tokenFile: string;
}

/**
 * A token file, read to 1 KiB: the token is at most 256 printable characters (proxyTokenProblem), and
 * what is made here is 68 and a newline; the rest leaves room for white space around it.
 */
export const TOKEN_FILE_BOUND: InputBound = {
  bytes: 1024,
  expected: "one token of at most 256 printable characters",
};

/**
 * The local token: read from the file, or made (32 random bytes, hex) into a new 0600 file. An
 * existing file must be private (readTokenFile): anyone who can plant or read it can use the proxy,
 * and through it this user's API key and KV-cache scope.
 */
export async function localToken(file: string): Promise<{ token: string; created: boolean }> {
  // Two proxies starting at once: the one that loses the creation race reads the winner's token.
  for (let attempt = 0; attempt < 3; attempt++) {
    const existing = await readTokenFile(file);
    if (existing !== null) return { token: existing, created: false };
    const token = `cpx_${randomBytes(32).toString("hex")}`;
    if (await createTokenFile(file, token)) return { token, created: true };
  }
  throw new UsageError(fileMessage(file, "--token-file", "keeps appearing and disappearing; expected a stable file"));
}

/**
 * The token in `file`, or null when there is no such file. Read as the API key files and what
 * cloister up reuses are (readSecretFile, the key broker's readPrivateKeyFile): a regular file, not
 * a link, this user's (or root's), no access for group or others, opened without blocking (a FIFO is
 * refused at once rather than waited on), to TOKEN_FILE_BOUND; each refusal a usage error naming
 * the file and the fix.
 */
async function readTokenFile(file: string): Promise<string | null> {
  let text: string;
  try {
    text = await readSecretFile(file, "--token-file", {
      bound: TOKEN_FILE_BOUND,
      held: "the proxy's token",
      // No such file is not a refusal (the token is made): the errno error itself, recognised below;
      // any other is worded as the reader's other refusals of the file (`--token-file path: …`).
      cannotRead: (error) => (isNoSuchFile(error) ? error : privateFileUnreadable("--token-file", file)(error)),
    });
  } catch (error) {
    if (isNoSuchFile(error)) return null;
    throw error;
  }
  const token = text.trim();
  const problem = proxyTokenProblem(token);
  if (problem !== null) {
    throw new UsageError(
      fileMessage(file, "--token-file", `expected one token of 32..256 printable characters, found ${problem}`),
    );
  }
  return token;
}

/** Node's error for a path with no file (not a UsageError, whose own code is USAGE). */
function isNoSuchFile(error: unknown): error is Error {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === "ENOENT";
}

/**
 * Writes the token into a new 0600 file as every secret the command line writes is
 * (writeFileAtomically): whole or not at all, on disk (the file and its directory fsync'ed) once
 * this resolves, linked into place, so never replacing a file that exists. False: another process
 * made it first (its token is read instead).
 */
async function createTokenFile(file: string, token: string): Promise<boolean> {
  // The default .cloister/ is made in the working directory, often an app's own repository: kept
  // out of git, as cloister up's --dir is. A directory that exists is the user's, left as it is.
  // Its refusals are its own (a part of the path that is a file among them), never read below as
  // another start's token appearing first.
  await makePrivateDirectory(dirname(file), "--token-file");
  /** The outcome of a link that lost the race (EEXIST): this call's own, told from any other error. */
  const taken = new Error("the token file exists");
  try {
    await writeFileAtomically(
      file,
      `${token}\n`,
      { mode: 0o600, replace: false },
      // An output's own refusals (outputFileErrors), but for the lost race.
      { ...outputFileErrors(file, "--token-file", "never"), exists: () => taken },
    );
    return true;
  } catch (error) {
    if (error === taken) return false;
    throw error;
  }
}

export async function runProxy(options: ProxyCommandOptions): Promise<void> {
  // Verify before listening: an enclave that fails attestation never gets a proxy in front of it.
  const policy = await readPolicy(options.policy);
  const log = (line: string) => process.stderr.write(`${line}\n`);
  // The first verification is described by the banner below; a later one that finds another
  // enclave (another boot, model or TEE) is logged, without content, as it happens.
  let verifications = 0;
  const session = await open(options, policy, {
    onVerified: (enclave, previous) => {
      const line = verifications++ === 0 ? null : enclaveChangeLine(enclave, previous, new Date());
      if (line !== null) log(line);
    },
  });
  const { token, created } = await localToken(options.tokenFile);
  const cutting = new AbortController();
  const app = createProxyApp({ session, token, log, cutting: cutting.signal });
  const server = await listenLoopback(app.fetch, options.port).catch((error: unknown) => {
    throw loopbackListenError(error);
  });
  process.stderr.write(`enclave verified\n${describeEnclave(session.enclave)}\n`);
  // What the policy lets through beyond known images, as `cloister attest` says it.
  for (const warning of policyRisks(policy, "is sent your prompts")) {
    process.stderr.write(`WARNING: policy: ${warning}\n`);
  }
  // Signals are handled before it says it listens: whoever reads that may stop it at once. Answers
  // under way go on to their end (as the host and the enclave let them), for up to the grace: an
  // app's stream cut by the stop would be an answer lost. Idle connections close at once; a second
  // signal cuts the rest at once. The streams cut are logged as cut by the stop (`cutting`).
  const closed = closeOnSignal(server, {
    graceMs: DEFAULT_SHUTDOWN_GRACE_MS,
    stopping: (reason) =>
      process.stderr.write(
        `shutting down (${reason}): answers under way may finish for up to ${DEFAULT_SHUTDOWN_GRACE_MS / 1000} s (again to stop at once) …\n`,
      ),
    beforeCut: () => cutting.abort(),
  });
  process.stdout.write(
    proxyStartLines({ url: server.url, model: attestedModelId(session), tokenFile: options.tokenFile, created }).join(
      "\n",
    ),
  );
  await closed;
}

/**
 * What `cloister proxy` prints once it listens: where, the model, the token's file and the line that
 * uses it, the file as a shell word (shellWord: a control character shown as an escape, never written
 * to the terminal; `$(cat …)` pastes as given). Exported for its tests.
 */
export function proxyStartLines(options: {
  url: string;
  model: string;
  tokenFile: string;
  created: boolean;
}): string[] {
  const tokenFile = shellWord(options.tokenFile);
  return [
    `OpenAI-compatible proxy listening on ${options.url}/v1`,
    `  model        ${options.model}`,
    `  API key      the token in ${tokenFile}${options.created ? " (new)" : ""}`,
    "",
    `Try:  OPENAI_BASE_URL=${options.url}/v1 OPENAI_API_KEY=$(cat ${tokenFile}) your-openai-app`,
    "Stop with Ctrl-C.",
    "",
  ];
}
