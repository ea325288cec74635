/** Implementation of `cloister enclave`: boot, serve, and shut down cleanly on SIGINT/SIGTERM. */

import type { JWK } from "jose";
import { describeUrlText } from "../attestation/url-text.ts";
import { readOptionFile, UsageError } from "../client/cli/output.ts";
import type { EnclaveCommandOptions } from "./cli.ts";
import { closeOnSignal, listen, waitUntil } from "./http.ts";
import { createEnclaveApp, type EnclaveServerState } from "./server.ts";
import { Enclave } from "./service.ts";
import { detectTeeMode } from "./tee.ts";

/**
 * Connections the enclave holds open at once: its hosts' (each opens at most its --max-in-flight,
 * 8192 at most, plus 64: host/app.ts), with room for several hosts; only hosts should reach it.
 */
export const ENCLAVE_MAX_CONNECTIONS = 16_384;

export async function runEnclaveCommand(options: EnclaveCommandOptions): Promise<void> {
  if (options.kbsUrl !== undefined) {
    let url: URL | null = null;
    try {
      url = new URL(options.kbsUrl);
    } catch {
      // reported below
    }
    // Shown in errors and boot logs, so it may carry nothing secret: no credentials, no query.
    if (
      url === null ||
      (url.protocol !== "http:" && url.protocol !== "https:") ||
      url.username !== "" ||
      url.password !== "" ||
      url.search !== "" ||
      url.hash !== ""
    ) {
      throw new UsageError(
        `--kbs-url: expected an http(s) URL without user name, password, query or fragment, found ${describeUrlText(options.kbsUrl)}`,
      );
    }
  }
  const tee =
    options.tee === "auto"
      ? await detectTeeMode((line) => process.stderr.write(`cloister enclave: ${line}\n`))
      : options.tee;
  const manifestJws = (await readOptionFile(options.manifest, "--manifest")).trim();
  const operatorKeys: JWK[] = [];
  for (const path of options.operatorKey) {
    try {
      operatorKeys.push(JSON.parse(await readOptionFile(path, "--operator-key")) as JWK);
    } catch (error) {
      if (error instanceof UsageError) throw error;
      throw new UsageError(`--operator-key: "${path}" is not JSON (expected a public JWK)`);
    }
  }
  const enclave = await Enclave.boot({
    manifestJws,
    operatorKeys,
    modelPath: options.model,
    tee,
    frameIntervalMs: options.frameIntervalMs,
    ...(options.kbsUrl === undefined ? {} : { kbsUrl: options.kbsUrl }),
    ...(options.tdxCollateral === undefined ? {} : { tdxCollateralDir: options.tdxCollateral }),
    ...(options.kdsUrl === undefined ? {} : { kdsUrl: options.kdsUrl }),
    ...(options.snpProduct === undefined ? {} : { snpProduct: options.snpProduct }),
  });
  const state: EnclaveServerState = { draining: false, active: 0 };
  const server = await listen(createEnclaveApp(enclave, state).fetch, options.listen, options.port, {
    maxConnections: ENCLAVE_MAX_CONNECTIONS,
  });
  // Signals are handled before "ready" is said: a supervisor may stop it the moment it reads that.
  const closed = closeOnSignal(server, {
    graceMs: options.shutdownGraceMs,
    // Draining: no new sessions or requests (503 ENCLAVE_DRAINING; a pool host sends them to another
    // enclave), answers under way finish, and the host collects their audit records, which would
    // otherwise die with this boot.
    drain: async (deadline) => {
      state.draining = true;
      await waitUntil(() => state.active === 0 && enclave.auditPending === 0, deadline);
      if (enclave.auditPending > 0) {
        process.stderr.write(
          `cloister enclave: shutting down with ${enclave.auditPending} audit record(s) the host has not collected\n`,
        );
      }
    },
    after: () => enclave.close(),
  });
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
  await closed;
}
