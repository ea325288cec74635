/** Implementation of `cloister enclave`: boot, serve, and shut down cleanly on SIGINT/SIGTERM, during boot as after it. */

import type { JWK } from "jose";
import { describeUrlText } from "../attestation/url-text.ts";
import { readOptionFile } from "../client/cli/bounded-file.ts";
import { errorText, formatCliError, listenUsageError, optionsUsageError } from "../client/cli/output.ts";
import { MANIFEST_FILE_BOUND, readOperatorKeyFile } from "../manifests/cli-impl.ts";
import type { EnclaveCommandOptions } from "./cli.ts";
import {
  closeOnSignal,
  handOverSignals,
  INTERNAL_KEEP_ALIVE_TIMEOUT_MS,
  type ListeningServer,
  listenBeforeServing,
  type Refusal,
  stopDuringBoot,
  waitUntil,
} from "./http.ts";
import {
  closeFailureBesidesCopies,
  copiesLeftText,
  modelCopiesLeft,
  removeModelCopiesNow,
  settledFailure,
} from "./model-staging.ts";
import { bootingAnswer, createEnclaveApp, type EnclaveServerState } from "./server.ts";
import { Enclave } from "./service.ts";
import { stoppedBy, takenAsStop } from "./stop.ts";
import { detectTeeMode, type TeeMode } from "./tee.ts";

/**
 * Connections the enclave holds open at once: its hosts' (each opens at most its --max-in-flight,
 * 8192 at most, plus 64: host/app.ts), with room for several hosts; only hosts should reach it.
 */
export const ENCLAVE_MAX_CONNECTIONS = 16_384;

/**
 * How long a boot step that failed after Ctrl-C reached the process group waits for the stop: run
 * alone, the SIGINT is the stop (already here); supervised, `cloister up` sends SIGTERM at once.
 */
const INTERRUPT_STOP_WAIT_MS = 5_000;

/**
 * The enclave's log line (stderr, as its other lines) for a request its server answered itself
 * (enclave/http.ts Refusal: one it could not read or did not receive in time, answered 400
 * REQUEST_UNREADABLE, 431 HEADERS_TOO_LARGE or 408 REQUEST_TIMEOUT), `when`: before any route saw
 * it (during boot or after), or reading its body once a route had it (the route's own answer never
 * reaches the client). Status, code, the method as node parsed it (one of a fixed list), the
 * answer's size and its fixed message: nothing the client sent, not even the path (what reaches
 * the enclave is the host's forwarding of sealed requests, and anything on the way may be an
 * attacker's).
 */
export function refusalLogLine(refusal: Refusal, when: "before any route" | "reading its body"): string {
  const method = refusal.method ?? "none (request line not read)";
  return `cloister enclave: request refused ${when}: ${refusal.status} ${refusal.code}, method ${method}, answer ${refusal.responseBytes} bytes: ${refusal.message}\n`;
}

export async function runEnclaveCommand(options: EnclaveCommandOptions): Promise<void> {
  // Signals are handled from the start: a stop during boot (SIGTERM from a supervisor, Ctrl-C)
  // abandons the boot where it is — a key broker's retries, the copy or decryption of the model, its
  // load —, removes the private model copy, and exits 0, as a stop after boot does; 1 when the copy
  // could not be removed, so a supervisor sees that decrypted weights were left behind. A second
  // signal stops at once, without waiting for the boot's steps to end: the copy is removed first
  // (synchronously), and what is left of it is said, with the same exit status.
  const stopped = new AbortController();
  // Serving the booted enclave failed, and what the boot opened is closing (below): a signal then is
  // worded for that close (the boot has ended); a second one still stops at once, but says that
  // error and exits 1, the command having failed.
  let unserved: { readonly error: unknown } | null = null;
  const endBootStop = stopDuringBoot(
    (reason) => {
      process.stderr.write(
        unserved === null
          ? `cloister enclave: shutting down (${reason} during boot) …\n`
          : `cloister enclave: ${reason} while closing (it could not serve) …\n`,
      );
      stopped.abort(reason);
    },
    (reason) => {
      removeModelCopiesNow();
      const left = modelCopiesLeft();
      if (unserved !== null) process.stderr.write(`${formatCliError(unserved.error)}\n`);
      const when = unserved === null ? "during boot" : "while closing";
      process.stderr.write(`cloister enclave: stopped at once (a second ${reason} ${when}); ${copiesLeftText(left)}\n`);
      process.exit(left.length > 0 || unserved !== null ? 1 : 0);
    },
  );
  // Ctrl-C is SIGINT to the terminal's whole foreground process group: the boot's helper processes
  // get it too (node-llama-cpp tests its binary in a child process before loading it), and the
  // step they serve then fails. Seen here whether it stops this process (run alone) or not
  // (supervised: `cloister up` stops it with SIGTERM next).
  let interrupted = false;
  const onInterrupt = () => {
    interrupted = true;
  };
  process.on("SIGINT", onInterrupt);
  const booted = await bootEnclave(options, stopped.signal)
    .finally(() => process.off("SIGINT", onInterrupt))
    .catch(async (error: unknown) => {
      if (stoppedBy(error, stopped.signal)) return null; // stopped: the boot removed what it had staged
      // A step that failed after Ctrl-C reached the process group is taken as stopped by it, once the
      // stop is here (supervised: SIGTERM, within INTERRUPT_STOP_WAIT_MS), its failure said, not lost.
      if (interrupted) {
        await waitUntil(() => stopped.signal.aborted, performance.now() + INTERRUPT_STOP_WAIT_MS);
        if (stopped.signal.aborted) {
          process.stderr.write(`${takenAsStop("cloister enclave", errorText(error))}\n`);
          return null;
        }
      }
      // A boot step that failed on its own while the stop was pending (the key broker refused, the
      // copy ran out of room) is the command's error, as without a stop: only the stop's own abort
      // of a step is a clean stop.
      endBootStop();
      // A copy the failed boot could not remove is named, as after a stop: the boot's error says
      // why it failed, not which decrypted weights are left (modelCopiesLeft is checked, not assumed).
      const left = modelCopiesLeft();
      if (left.length > 0) process.stderr.write(`cloister enclave: boot failed; ${copiesLeftText(left)}\n`);
      throw error;
    });
  if (booted === null || stopped.signal.aborted) {
    // Stopped during boot, or just after its last step: then closing the enclave removes its copy;
    // a removal that fails is named below, as after boot, not thrown past the server's close.
    const { left, unsaid } = await closeUnserved(booted, endBootStop);
    process.stderr.write(`cloister enclave: stopped before serving; ${copiesLeftText(left)}\n`);
    if (left.length > 0) process.exitCode = 1;
    // The first failure of the close is the command's error (main writes it last, below this line);
    // one more (the server's close) is said here.
    for (const failure of unsaid.slice(1)) {
      process.stderr.write(`cloister enclave: besides the error below, closing failed: ${errorText(failure)}\n`);
    }
    if (unsaid.length > 0) throw unsaid[0];
    return;
  }
  const { server, enclave, tee } = booted;
  const state: EnclaveServerState = { draining: false, active: 0 };
  try {
    server.serve(createEnclaveApp(enclave, state).fetch);
  } catch (error) {
    // Not served (a fault of ours: never seen): what the boot opened is closed, as after a stop during
    // boot — the enclave (its engine, its model copy), the server, the boot's signal handlers — so
    // the process exits, with this error; a copy left is named, as after a failed boot.
    unserved = { error };
    const { left, unsaid } = await closeUnserved(booted, endBootStop);
    if (left.length > 0) process.stderr.write(`cloister enclave: could not serve; ${copiesLeftText(left)}\n`);
    // The serving error is the command's (the one the operator needs), which main writes last: the
    // close's failures come before it, worded so.
    for (const failure of unsaid) {
      process.stderr.write(
        `cloister enclave: while stopping after the error below, closing failed: ${errorText(failure)}\n`,
      );
    }
    throw error;
  }
  // Signals are handled by closeOnSignal from here (its listeners added before the boot's are
  // removed: handOverSignals), before "ready" is said: a supervisor may stop it the moment it reads that.
  const closed = handOverSignals(endBootStop, () =>
    closeEnclaveOnSignal(server, enclave, state, options.shutdownGraceMs),
  );
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
  // A stop after boot says nothing of the model copy when it removed it, and exits 0; when the
  // removal failed (closing the enclave rejects: EBUSY, EIO), its last line names the copy left, as a
  // stop during boot does, and it exits 1, so a supervisor sees that decrypted weights were left
  // behind. Any other failure of the shutdown is the command's error (exit 1).
  const failure = await settledFailure(closed, "the enclave's close");
  const left = modelCopiesLeft();
  if (left.length > 0) {
    process.stderr.write(`cloister enclave: stopped; ${copiesLeftText(left)}\n`);
    process.exitCode = 1;
  }
  const unsaid = closeFailureBesidesCopies(failure, left);
  if (unsaid !== null) throw unsaid;
}

/**
 * How long a draining enclave goes on serving its audit records once its grace has ended and it has
 * cut the answers still under way: each cut answer writes its record at the cut, whether or not its
 * engine has stopped (enclave/server.ts writeFrames, enclave/service.ts abandon), and the host,
 * which collects after each answer and every second (host/server.ts), gets this long to take them.
 * Bounded so that a stop stays within what supervisors wait before SIGKILL: `cloister up` 15 s
 * after its SIGTERM (client/cli/deploy.ts stopChild), the systemd units of docs/deploy.md 20 s
 * (TimeoutStopSec); the default grace (10 s) plus this is within both.
 */
const AUDIT_COLLECTION_AFTER_CUT_MS = 2_000;

/**
 * How the serving enclave stops (closeOnSignal): it drains (drainEnclave) for up to `graceMs`, and
 * a bounded moment more when it had to cut answers; then it says how many audit records the host
 * has not collected, if any, also when a second signal cut the drain short; then it frees the
 * engine and removes the model copy.
 */
export function closeEnclaveOnSignal(
  server: ListeningServer,
  enclave: Enclave,
  state: EnclaveServerState,
  graceMs: number,
): Promise<void> {
  return closeOnSignal(server, {
    graceMs,
    // Draining: no new sessions or requests (503 ENCLAVE_DRAINING; a pool host sends them to another
    // enclave), answers under way finish, and the host collects their audit records, which would
    // otherwise die with this boot.
    drain: (deadline) => drainEnclave(server, enclave, state, deadline),
    after: () => {
      // Once the server is closed: every answer has been cut, if not ended yet, and writes its record.
      sayUncollectedAudit(enclave);
      return enclave.close();
    },
  });
}

/**
 * The drain of `closeEnclaveOnSignal`: no new sessions or requests (503 ENCLAVE_DRAINING), answers
 * under way finish and the host collects their audit records, until `deadline`. Answers still under
 * way then are cut, and the host gets AUDIT_COLLECTION_AFTER_CUT_MS more to collect the records they
 * write at the cut.
 */
export async function drainEnclave(
  server: Pick<ListeningServer, "cutConnections">,
  enclave: Pick<Enclave, "auditPending">,
  state: EnclaveServerState,
  deadline: number,
): Promise<void> {
  state.draining = true;
  const settled = () => state.active === 0 && enclave.auditPending === 0;
  await waitUntil(settled, deadline);
  if (state.active > 0) {
    // Cut here, not by the server's close: it goes on listening, serving /audit (everything else is
    // refused while draining), so the host can still collect the records the cut answers write.
    server.cutConnections();
    await waitUntil(settled, performance.now() + AUDIT_COLLECTION_AFTER_CUT_MS);
  }
}

/**
 * Says how many audit records the host has not collected (nothing when none): those written and
 * not acknowledged, and one for each sealed request under way whose record is not written yet (a
 * second signal cut the drain short), which writes it as it ends (Enclave.auditOwed). A record is
 * never lost without a word. An answer that has written its record and is still waiting for its
 * engine to stop counts once, by its record. (A request cut while its body was arriving writes
 * none, and ends at once.)
 */
function sayUncollectedAudit(enclave: Pick<Enclave, "auditPending" | "auditOwed">): void {
  const uncollected = enclave.auditPending + enclave.auditOwed;
  if (uncollected > 0) {
    process.stderr.write(
      `cloister enclave: shutting down with ${uncollected} audit record(s) the host has not collected\n`,
    );
  }
}

/** What the boot made: the server (answering 503 ENCLAVE_BOOTING until served), the enclave, and its TEE (--tee auto's, detected). */
interface Booted {
  readonly server: ListeningServer;
  readonly enclave: Enclave;
  readonly tee: TeeMode;
}

/**
 * Closes what a boot that will not serve opened (`booted`: none when stopped during it): the enclave
 * (its engine, its model copy; a failure kept, not thrown past the server's close), the server, and
 * the boot's signal handlers (`endBootStop`). The model copies left, and a close failure they do not say.
 */
async function closeUnserved(
  booted: Booted | null,
  endBootStop: () => void,
): Promise<{ readonly left: ReturnType<typeof modelCopiesLeft>; readonly unsaid: readonly unknown[] }> {
  const closing = booted === null ? null : await settledFailure(booted.enclave.close(), "the enclave's close");
  // The server's close failing ends nothing early: the boot's handlers are removed all the same (the
  // process can exit), and its failure is returned after the enclave's, not thrown in place of it.
  const serverClosing = booted === null ? null : await settledFailure(booted.server.close(), "the server's close");
  endBootStop();
  const left = modelCopiesLeft();
  const unsaid = [closeFailureBesidesCopies(closing, left), serverClosing?.error ?? null];
  return { left, unsaid: unsaid.filter((failure) => failure !== null) };
}

/** The boot: options checked, listening (503 ENCLAVE_BOOTING meanwhile), the Enclave booted; stops when `signal` aborts. */
async function bootEnclave(options: EnclaveCommandOptions, signal: AbortSignal): Promise<Booted> {
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
      throw optionsUsageError(
        `--kbs-url: expected an http(s) URL without user name, password, query or fragment, found ${describeUrlText(options.kbsUrl)}`,
      );
    }
  }
  const tee =
    options.tee === "auto"
      ? await detectTeeMode((line) => process.stderr.write(`cloister enclave: ${line}\n`))
      : options.tee;
  const manifestJws = (await readOptionFile(options.manifest, "--manifest", MANIFEST_FILE_BOUND)).trim();
  const operatorKeys: JWK[] = [];
  for (const path of options.operatorKey) operatorKeys.push(await readOperatorKeyFile(path));
  // Listening before the boot: a port in use or a --listen address that does not resolve is bad
  // input found now, not after the key broker released the model key and the model was loaded, and
  // the port is this process's from here on. Until the boot ends, requests get 503 ENCLAVE_BOOTING.
  const server = await listenBeforeServing(bootingAnswer, options.listen, options.port, {
    maxConnections: ENCLAVE_MAX_CONNECTIONS,
    keepAliveTimeoutMs: INTERNAL_KEEP_ALIVE_TIMEOUT_MS,
    onRefused: (refusal) => process.stderr.write(refusalLogLine(refusal, "before any route")),
    // The host and the key broker say it in their line per request; the enclave keeps none.
    onBodyRefused: (refusal) => process.stderr.write(refusalLogLine(refusal, "reading its body")),
  }).catch((error: unknown) => {
    throw listenUsageError(error);
  });
  try {
    const enclave = await Enclave.boot({
      manifestJws,
      operatorKeys,
      modelPath: options.model,
      tee,
      frameIntervalMs: options.frameIntervalMs,
      signal,
      ...(options.kbsUrl === undefined ? {} : { kbsUrl: options.kbsUrl }),
      ...(options.tdxCollateral === undefined ? {} : { tdxCollateralDir: options.tdxCollateral }),
      ...(options.kdsUrl === undefined ? {} : { kdsUrl: options.kdsUrl }),
      ...(options.snpProduct === undefined ? {} : { snpProduct: options.snpProduct }),
    });
    return { server, enclave, tee };
  } catch (error) {
    await server.close();
    throw error;
  }
}
