/** `cloister proxy`: verify the enclave, then serve the OpenAI-compatible API on 127.0.0.1. */
import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { listen } from "../../enclave/http.ts";
import { attestedModelId, createProxyApp } from "../proxy.ts";
import type { ClientConnectionOptions } from "./commands.ts";
import { UsageError } from "./output.ts";
import { describeEnclave, open } from "./run-client.ts";
import { waitForSignal } from "./run-up.ts";

export interface ProxyCommandOptions extends ClientConnectionOptions {
  port: number;
  tokenFile: string;
}

/** The local token: read from the file, or made (32 random bytes, hex) into a new 0600 file. */
async function localToken(file: string): Promise<{ token: string; created: boolean }> {
  try {
    const token = (await readFile(file, "utf8")).trim();
    if (!/^[\x21-\x7e]{32,256}$/.test(token)) {
      throw new UsageError(`--token-file "${file}": expected 32..256 printable characters, found ${token.length}`);
    }
    return { token, created: false };
  } catch (error) {
    if (error instanceof UsageError || (error as NodeJS.ErrnoException).code !== "ENOENT") {
      if (error instanceof UsageError) throw error;
      throw new UsageError(`--token-file: cannot read "${file}" (${(error as NodeJS.ErrnoException).code ?? "error"})`);
    }
  }
  const token = `cpx_${randomBytes(32).toString("hex")}`;
  try {
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    await writeFile(file, `${token}\n`, { mode: 0o600, flag: "wx" });
  } catch (error) {
    throw new UsageError(`--token-file: cannot create "${file}" (${(error as NodeJS.ErrnoException).code ?? "error"})`);
  }
  return { token, created: true };
}

export async function runProxy(options: ProxyCommandOptions): Promise<void> {
  // Verify before listening: an enclave that fails attestation never gets a proxy in front of it.
  const session = await open(options);
  const { token, created } = await localToken(options.tokenFile);
  const app = createProxyApp({ session, token, log: (line) => process.stderr.write(`${line}\n`) });
  const server = await listen(app.fetch, "127.0.0.1", options.port).catch((error: NodeJS.ErrnoException) => {
    throw new UsageError(`--port ${options.port}: cannot listen on 127.0.0.1 (${error.code ?? "error"})`);
  });
  process.stderr.write(`enclave verified\n${describeEnclave(session.enclave)}\n`);
  process.stdout.write(
    [
      `OpenAI-compatible proxy listening on ${server.url}/v1`,
      `  model        ${attestedModelId(session)}`,
      `  API key      the token in ${options.tokenFile}${created ? " (new)" : ""}`,
      "",
      `Try:  OPENAI_BASE_URL=${server.url}/v1 OPENAI_API_KEY=$(cat ${options.tokenFile}) your-openai-app`,
      "Stop with Ctrl-C.",
      "",
    ].join("\n"),
  );
  const reason = await waitForSignal();
  process.stderr.write(`shutting down (${reason}) …\n`);
  await server.close();
}
