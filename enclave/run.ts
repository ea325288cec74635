/** Implementation of `cloister enclave`: boot, serve, and shut down cleanly on SIGINT/SIGTERM. */

import { UsageError } from "../client/cli/output.ts";
import type { EnclaveCommandOptions } from "./cli.ts";
import { closeOnSignal, listen } from "./http.ts";
import { createEnclaveApp } from "./server.ts";
import { Enclave } from "./service.ts";
import { detectTeeMode } from "./tee.ts";

export async function runEnclaveCommand(options: EnclaveCommandOptions): Promise<void> {
  if (options.kbsUrl !== undefined) {
    let url: URL | null = null;
    try {
      url = new URL(options.kbsUrl);
    } catch {
      // reported below
    }
    if (url === null || (url.protocol !== "http:" && url.protocol !== "https:")) {
      throw new UsageError(`--kbs-url: expected an http(s) URL, found "${options.kbsUrl}"`);
    }
  }
  const tee =
    options.tee === "auto"
      ? await detectTeeMode((line) => process.stderr.write(`cloister enclave: ${line}\n`))
      : options.tee;
  const enclave = await Enclave.bootFromFiles({
    manifestPath: options.manifest,
    operatorKeyPaths: options.operatorKey,
    modelPath: options.model,
    tee,
    frameIntervalMs: options.frameIntervalMs,
    ...(options.kbsUrl === undefined ? {} : { kbsUrl: options.kbsUrl }),
  });
  const server = await listen(createEnclaveApp(enclave).fetch, options.listen, options.port);
  // One machine-readable line on stdout: what a supervisor (cloister up) waits for. Public values only.
  process.stdout.write(
    `${JSON.stringify({
      event: "ready",
      url: server.url,
      tee,
      simulated: enclave.evidenceSource.simulated,
      measurement: enclave.evidenceSource.measurement,
      model: enclave.manifest.model.sha256,
    })}\n`,
  );
  await closeOnSignal(server, () => enclave.close(), options.shutdownGraceMs);
}
