/** Implementation of `cloister enclave`: boot, serve, and shut down cleanly on SIGINT/SIGTERM. */

import type { EnclaveCommandOptions } from "./cli.ts";
import { listen } from "./http.ts";
import { createEnclaveApp } from "./server.ts";
import { Enclave } from "./service.ts";
import { detectTeeMode } from "./tee.ts";

export async function runEnclaveCommand(options: EnclaveCommandOptions): Promise<void> {
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
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      void server
        .close()
        .then(() => enclave.close())
        .then(resolve);
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
}
