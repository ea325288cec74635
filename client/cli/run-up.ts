/** `cloister up` and `cloister demo`. */
import { constants } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import { basename, dirname, join, relative, resolve } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { describeFileKind, fileErrorCause, fileMessage, shellWord } from "../../attestation/bounded-read.ts";
import { verifyAuditLogHandle } from "../../enclave/audit-cli-impl.ts";
import { stopDuringBoot } from "../../enclave/http.ts";
import { parseCorsOrigin } from "../cors-origin.ts";
import { connect, type Session } from "../sdk.ts";
import { stopFailures } from "./child-lines.ts";
import {
  DEFAULT_PROXY_PORT,
  DEFAULT_WEB_ORIGIN,
  DEFAULT_WEB_PORT,
  LOCAL_PROXY_TOKEN_FILE,
  type UpOptions,
} from "./commands.ts";
import {
  ChildExitedError,
  type DeploymentFiles,
  fixedPorts,
  prepareDeployment,
  type RunningDeployment,
  refuseUnavailablePorts,
  startDeployment,
} from "./deploy.ts";
import { closingAfter, counted, optionsUsageError, STOPPED_EXIT_CODE, type StopReason, UsageError } from "./output.ts";
import { describeEnclave, LOCAL_API_KEY_FILE } from "./run-client.ts";
import { untrustedTextWriter, visibleOnOneLine } from "./terminal-text.ts";

function say(line: string): void {
  process.stderr.write(`${line}\n`);
}

async function boot(
  options: UpOptions,
  log: (line: string) => void,
  signal?: AbortSignal,
  onStopFailure?: (who: string, how: string, lastLine: string | null) => void,
  interrupted?: () => Promise<boolean>,
): Promise<RunningDeployment> {
  for (const origin of options.corsOrigin ?? []) {
    try {
      parseCorsOrigin(origin);
    } catch (error) {
      throw optionsUsageError(`--cors-origin: ${(error as Error).message}`);
    }
  }
  // Before the model is made and anything is started: a port that is taken fails at once.
  await refuseUnavailablePorts(
    fixedPorts({
      hostPort: options.hostPort,
      enclavePort: options.enclavePort,
      enclaves: options.enclaves,
      kbsPort: options.sealedModel ? options.kbsPort : null,
    }),
  );
  const files = await prepareDeployment({
    dir: options.dir,
    tee: options.tee,
    threads: options.threads,
    progress: say,
    sealedModel: options.sealedModel,
  });
  const broker = files.kbs === null ? "" : "a key broker, ";
  const enclaves =
    options.enclaves === 1
      ? `a simulated ${options.tee} enclave`
      : `${options.enclaves} simulated ${options.tee} enclaves`;
  say(`starting ${broker}${enclaves} and the host on 127.0.0.1 …`);
  return startDeployment({
    files,
    tee: options.tee,
    hostPort: options.hostPort,
    enclavePort: options.enclavePort,
    kbsPort: options.kbsPort,
    enclaves: options.enclaves,
    log,
    ...(options.corsOrigin === undefined ? {} : { corsOrigins: options.corsOrigin }),
    ...(signal === undefined ? {} : { signal }),
    ...(onStopFailure === undefined ? {} : { onStopFailure }),
    ...(interrupted === undefined ? {} : { interrupted }),
  });
}

/**
 * `up`'s key broker line: the broker released the model key to each enclave it booted (every
 * member of a pool asks for it), so a pool's line says each. Exported for its tests.
 */
export function kbsLine(options: { kbsUrl: string; keyId: string; configPath: string; enclaves: number }): string {
  const to = options.enclaves > 1 ? `each of the ${options.enclaves} attested enclaves` : "the attested enclave";
  return (
    `  key broker   ${options.kbsUrl}  ` +
    `(released model key "${options.keyId}" to ${to}; config ${options.configPath})`
  );
}

/**
 * What `cloister up` writes once its processes are up: where each is, its files (each path on its
 * line, visibleOnOneLine: a --dir may hold a line feed or an ESC), and the commands to try (tryLines:
 * paths as shell words).
 */
export function upBanner(
  deployment: Pick<RunningDeployment, "hostUrl" | "enclaveUrls" | "kbsUrl"> & {
    readonly files: Pick<DeploymentFiles, "policyPath" | "apiKeyPath" | "kbs">;
  },
  options: { readonly tee: string; readonly corsOrigin?: readonly string[] },
): string {
  const policy = relative(process.cwd(), deployment.files.policyPath) || deployment.files.policyPath;
  const enclaves = deployment.enclaveUrls.length;
  const pool =
    enclaves > 1
      ? `  (a pool of ${enclaves} enclaves, routed by key id; GET /healthz with the API key shows them)`
      : "";
  // A path under the user's --dir on one line: what a terminal acts on, a line feed too, escaped.
  return [
    `Cloister is up (SIMULATED ${options.tee}: trusted only because ${visibleOnOneLine(policy)} says so).`,
    `  host URL     ${deployment.hostUrl}${pool}`,
    `  policy       ${visibleOnOneLine(policy)}`,
    `  API key file ${visibleOnOneLine(relative(process.cwd(), deployment.files.apiKeyPath))}`,
    ...(deployment.kbsUrl === null || deployment.files.kbs === null
      ? ["  model        plain GGUF file (--no-sealed-model)"]
      : [
          kbsLine({
            kbsUrl: deployment.kbsUrl,
            keyId: deployment.files.kbs.keyId,
            configPath: visibleOnOneLine(relative(process.cwd(), deployment.files.kbs.configPath)),
            enclaves: deployment.enclaveUrls.length,
          }),
        ]),
    "",
    ...tryLines({
      hostUrl: deployment.hostUrl,
      policy,
      apiKeyFile: deployment.files.apiKeyPath,
      corsOrigins: options.corsOrigin ?? [],
    }),
    "Stop with Ctrl-C.",
    "",
  ].join("\n");
}

/**
 * The commands `cloister up` suggests, to run from the current directory: the policy as a path
 * from it, and, when the API key is not where the client commands look by default
 * (LOCAL_API_KEY_FILE, i.e. `--dir` is not .cloister), `--api-key-file` naming it on every command
 * that sends it (`web` has no such option: its page asks for the key), and `--token-file` the
 * proxy's token beside it (else the proxy would make one in the current directory's .cloister/).
 * `web` gets the `--port` of an origin the host allows (`corsOrigins`, up's --cors-origin) when it
 * does not allow the default one: the browser refuses the host's answers to a page from any other.
 */
export function tryLines(options: {
  hostUrl: string;
  policy: string;
  apiKeyFile: string;
  corsOrigins: readonly string[];
}): string[] {
  const cwd = process.cwd();
  /** ` OPTION FILE` (from the current directory) when `file` is not the option's default, else nothing. */
  const unlessDefault = (option: string, file: string, byDefault: string) =>
    resolve(cwd, file) === resolve(cwd, byDefault) ? "" : ` ${option} ${shellWord(relative(cwd, file) || file)}`;
  const key = unlessDefault("--api-key-file", options.apiKeyFile, LOCAL_API_KEY_FILE);
  // The proxy makes its token where --token-file says, by default in the current directory's
  // .cloister/: after `up --dir D`, in D, beside the API key file, with up's other files.
  // Only a command line printed: the proxy that runs it makes and checks the token's directory
  // itself (private-directory.ts makePrivateDirectory) and reads the token with its own checks.
  const token = unlessDefault(
    "--token-file",
    join(dirname(options.apiKeyFile), basename(LOCAL_PROXY_TOKEN_FILE)),
    LOCAL_PROXY_TOKEN_FILE,
  );
  const connection = `--url ${options.hostUrl} --policy ${shellWord(options.policy)}`;
  const port = webPagePort(options.corsOrigins);
  const proxy = `      npx cloister proxy ${connection}${key}${token}`;
  const web =
    port === null ? null : `      npx cloister web ${connection}${port === DEFAULT_WEB_PORT ? "" : ` --port ${port}`}`;
  // The two notes start in one column, three spaces past the longer command.
  const column = Math.max(proxy.length, web?.length ?? 0) + 3;
  return [
    `Try:  npx cloister attest ${connection}${key}`,
    `      npx cloister chat ${connection}${key} "What does the enclave do?"`,
    `      npx cloister audit checkpoint ${connection}${key} --out checkpoint.json`,
    `${proxy.padEnd(column)}(OpenAI-compatible, on 127.0.0.1:${DEFAULT_PROXY_PORT} unless --port)`,
    web === null
      ? "      (cloister web: the host allows no origin it serves its page from; " +
        `start up with --cors-origin ${DEFAULT_WEB_ORIGIN} for it)`
      : `${web.padEnd(column)}(a page that verifies and seals in the browser)`,
  ];
}

/**
 * The port `cloister web`, which serves its page on http://127.0.0.1, must take for the host to
 * allow the page's origin (one of `corsOrigins`, parsed by parseCorsOrigin): its default port when
 * allowed, else the first allowed; null when none is such an origin (`localhost` is another).
 */
function webPagePort(corsOrigins: readonly string[]): number | null {
  if (corsOrigins.includes(DEFAULT_WEB_ORIGIN)) return DEFAULT_WEB_PORT;
  for (const origin of corsOrigins) {
    const url = new URL(origin);
    if (url.protocol === "http:" && url.hostname === "127.0.0.1") return url.port === "" ? 80 : Number(url.port);
  }
  return null;
}

/**
 * Whether `error`, with which a boot that a stop (`asked`, stopsAskedFor's) interrupted failed, is
 * that stop: the abort itself, or a child killed by SIGINT when the stop was a SIGINT too (its
 * `reason()`: its output closed just before it included), the terminal's Ctrl-C, which reaches the
 * whole process group. That child counts as stopped however late `up`'s own SIGINT was handled:
 * past CTRL_C_SETTLE_MS (deploy.ts) its death was taken for a boot failure, and the boot was
 * stopping the other children when the SIGINT came. Anything else is
 * a failure, said and exit 1, whatever stop came after it: a child that exited on its own (any exit
 * code, or another signal), a port refused, a file that could not be written.
 */
function isStop(error: unknown, asked: ReturnType<typeof stopsAskedFor>): boolean {
  if (error === asked.boot.reason) return true;
  return asked.reason() === "SIGINT" && error instanceof ChildExitedError && error.signal === "SIGINT";
}

/**
 * Whether the stop `asked` (stopsAskedFor's) is the terminal's Ctrl-C, once its reason is settled:
 * what the children, stopped, are checked with (startDeployment's `interrupted`).
 */
function interruptedBy(asked: ReturnType<typeof stopsAskedFor>): () => Promise<boolean> {
  return async () => (await asked.settledReason()) === "SIGINT";
}

/**
 * The deployment `booting` gives, unless `stop` (stopsAskedFor's `boot`) was aborted meanwhile: a
 * boot that completed all the same (its last step done as the stop came) is stopped, and the stop's
 * reason thrown, as a boot the stop interrupted throws it. Else `up` said "Cloister is up … Stop
 * with Ctrl-C." after `shutting down (SIGINT during boot)`, then `shutting down` again, and `demo`
 * began its demo.
 */
async function stoppedIfAborted(booting: Promise<RunningDeployment>, stop: AbortSignal): Promise<RunningDeployment> {
  const deployment = await booting;
  if (!stop.aborted) return deployment;
  await deployment.stop();
  throw stop.reason;
}

/**
 * How long after its output closed, the first stop, a Ctrl-C is taken for the one that closed it
 * (stopsAskedFor's `reason()`). Under `up 2>&1 | tee log` the Ctrl-C ends tee too, and the EPIPE of
 * a line `up` writes just then may be handled before its own SIGINT: that Ctrl-C is the stop then,
 * as when its SIGINT is handled first (a child it killed before the child ignored it is stopped, not
 * a boot failure; demo exits 130, not 141). A SIGINT handled later is a Ctrl-C during the stop.
 * Exported for its tests.
 */
export const OUTPUT_CLOSED_SETTLE_MS = 500;

/**
 * The stops asked for (Ctrl-C, SIGTERM, output closed) of `up` and `demo`, from their first line to
 * their last, handled by stopDuringBoot (enclave/http.ts) as the enclave and the host handle theirs
 * during boot. The first aborts the boot under way (`boot`, said on stderr) until `booted()`, then
 * is the caller's to handle (`signalled`): it stops what it started. A second (Ctrl-C again,
 * SIGTERM) exits at once, saying so, with the status of a command stopped early (130, 143; 1 when
 * a child failed as it stopped, `failed`, or the stop began for a failure, `stopping`'s); the
 * children, supervised, stop on their own once it has gone (output.ts stopWhenParentExits),
 * unwatched. Output closed is no second stop: under `cloister up 2>&1 | tee log`, Ctrl-C reaches
 * tee too, and the EPIPE of up's next line exited at once, its children left to stop after it had
 * gone; a Ctrl-C a moment after its output closed first (OUTPUT_CLOSED_SETTLE_MS) is taken for the
 * one that closed it, the stop's reason then (`reason()`). A stop asked for during one that began
 * for another reason (`stopping(why, …)`: the host exited, demo failed or finished; or the output
 * closed) is said, with how to exit at once. `cloister web` stops its page server so
 * (`startedProcesses`: false, it started none: its exit at once says nothing of them). Exported
 * for its tests.
 */
export function stopsAskedFor(
  failed: () => boolean,
  options: { readonly startedProcesses?: boolean } = {},
): {
  /** The first stop asked for. */
  readonly signalled: Promise<StopReason>;
  /** Aborted, with the first stop's reason, when it comes before `booted()`. */
  readonly boot: AbortSignal;
  /**
   * The first stop's reason (null before it): "SIGINT" when it was its output closed and a Ctrl-C
   * followed within OUTPUT_CLOSED_SETTLE_MS (`boot` and `signalled` keep "output closed").
   */
  reason(): StopReason | null;
  /**
   * `reason()` once it is settled: at once, unless the first stop was its output closed less than
   * OUTPUT_CLOSED_SETTLE_MS ago; then when a Ctrl-C comes (SIGINT) or that time has passed (output
   * closed). What a child killed by SIGINT is checked with as it is stopped (deploy.ts stopChild):
   * that child may be seen gone, and the stop begun for the EPIPE, before up's own SIGINT is handled.
   */
  settledReason(): Promise<StopReason | null>;
  booted(): void;
  /**
   * A stop began for another reason (`why`); `failed`: the command fails for it (exit 1, also when
   * a second stop cuts it short).
   */
  stopping(why: string, outcome: { readonly failed: boolean }): void;
} {
  const boot = new AbortController();
  let booted = false;
  let first: StopReason | null = null;
  let stoppingFor: string | null = null;
  let stoppingFailed = false;
  let signal: (reason: StopReason) => void = () => {};
  const signalled = new Promise<StopReason>((resolve) => {
    signal = resolve;
  });
  /** The first stop: the boot under way is aborted with its reason; `signalled` resolves with it. */
  const begin = (reason: StopReason) => {
    first = reason;
    if (!booted) {
      say(`shutting down (${reason} during boot) …`);
      boot.abort(reason);
    }
    signal(reason);
  };
  let settling = false;
  /** Each settledReason() waiting for the settling to end. */
  const waiting = new Set<() => void>();
  const endSettling = () => {
    settling = false;
    for (const settled of waiting) settled();
  };
  stopDuringBoot(
    (reason) => {
      if (reason === "SIGINT" && first === "output closed" && settling) {
        // The Ctrl-C that closed it (tee ended by it), handled after the EPIPE: the stop under way
        // is that Ctrl-C's, not one asked for during it.
        first = reason;
        endSettling();
        if (stoppingFor === null) return;
      }
      const during = stoppingFor ?? first;
      // Output closed is no stop asked for by anyone, and not counted: the next Ctrl-C does not exit.
      if (during !== null && reason !== "output closed") {
        say(`${reason} while stopping (${during}): Ctrl-C again to exit at once`);
      }
      if (first !== null) return;
      if (reason === "output closed") {
        settling = true;
        setTimeout(endSettling, OUTPUT_CLOSED_SETTLE_MS).unref();
      }
      begin(reason);
    },
    (reason) => {
      const left =
        options.startedProcesses === false ? "" : "; the processes it started stop on their own once it has gone";
      say(`${reason} while stopping: exiting at once${left}`);
      process.exit(stoppingFailed || failed() ? 1 : STOPPED_EXIT_CODE[reason]);
    },
    { countOutputClosed: false },
  );
  return {
    signalled,
    boot: boot.signal,
    reason: () => first,
    settledReason: () => {
      if (!settling) return Promise.resolve(first);
      return new Promise((resolve) => {
        // Held by a timer of its own (the settling's is unref'd): the stop waiting here is not cut
        // short by an event loop left empty, its children all gone.
        const keepAlive = setTimeout(() => {}, OUTPUT_CLOSED_SETTLE_MS);
        const settled = () => {
          clearTimeout(keepAlive);
          waiting.delete(settled);
          resolve(first);
        };
        waiting.add(settled);
      });
    },
    booted: () => {
      booted = true;
    },
    stopping: (why, outcome) => {
      stoppingFor = why;
      stoppingFailed = outcome.failed;
    },
  };
}

/** `bootStep`: `boot`, or its tests' own. */
export async function runUp(options: UpOptions, bootStep: typeof boot = boot): Promise<void> {
  // Signals are handled from the start: Ctrl-C during boot stops what has started (host, enclaves,
  // key broker, in that order, as after boot), and before it says it is up, whoever reads that may
  // stop it at once. A second signal exits at once (stopsAskedFor).
  // A stop asked for (Ctrl-C, SIGTERM, output closed) is a clean shutdown of a server, during boot
  // as after it: exit 0, as host, enclave and key broker do, so a supervisor's stop is no failure
  // whenever it comes. A child that exits on its own fails it (1), and so does one that, stopped,
  // does not exit 0 (an enclave that could not remove its private model copy): its last line is
  // said again, so the decrypted weights left behind are not lost among the children's lines. A
  // boot failure is one even when a stop comes as the other children are stopped (isStop).
  const stops = stopFailures();
  const asked = stopsAskedFor(stops.failed);
  let deployment: RunningDeployment;
  try {
    deployment = await stoppedIfAborted(
      bootStep(options, say, asked.boot, stops.onStopFailure, interruptedBy(asked)),
      asked.boot,
    );
  } catch (error) {
    if (!asked.boot.aborted || !isStop(error, asked)) throw error;
    say("stopped: every process it started has exited");
    if (stops.failed()) process.exitCode = 1;
    return;
  }
  asked.booted();
  process.stdout.write(upBanner(deployment, options));
  const reason = await Promise.race([asked.signalled, deployment.exited.then((who) => `${who} exited`)]);
  say(`shutting down (${reason}) …`);
  if (reason.endsWith("exited")) asked.stopping(reason, { failed: true });
  await deployment.stop();
  say("stopped: every process it started has exited");
  if (reason.endsWith("exited") || stops.failed()) process.exitCode = 1;
}

/**
 * Reads the audit records the host stored for this enclave boot and verifies them under the
 * attested Ed25519 key against a fresh checkpoint the enclave signed (the host collects records
 * right after each response): every record signed and chained, none cut from the end. Until
 * `signal` (the demo's stop) is aborted.
 */
async function checkAudit(dir: string, session: Session, signal: AbortSignal): Promise<string> {
  const enclave = session.enclave;
  const checkpoint = await session.auditCheckpoint();
  // By name (the host stores it by name, and the directory up held is closed): no path check here,
  // and none needed, since what is read is verified, not trusted: each record signed by the attested
  // key and chained, the last one and the count those of the checkpoint the enclave signed just now.
  // A file swapped in by the owner of a directory above fails the check (or is the true records).
  const file = join(dir, "audit", `${enclave.documentDigest.slice(0, 16)}.jsonl`);
  return checkStoredAuditLog(file, enclave.signingPublicKey, checkpoint, 50, signal);
}

/**
 * Waits (up to `attempts` × 100 ms) until the host has stored as many whole lines as the checkpoint
 * counts, then verifies the file as `cloister audit verify` does, every line of it (an empty line
 * fails here as it does there; a CRLF line passes in both). Throws naming the file and the
 * verifier's message; or `signal`'s reason once it is aborted (a stop: the host, stopped, stores
 * nothing more, and the wait kept the stopped command alive up to its end). The lines counted and
 * the lines verified are those of one open file (storedLog): a file put in the log's place between
 * the two, a FIFO among them, is not read.
 */
export async function checkStoredAuditLog(
  file: string,
  signingPublicKey: Uint8Array,
  checkpoint: { readonly count: number; readonly lastRecordHash: string },
  attempts = 50,
  signal?: AbortSignal,
): Promise<string> {
  for (let attempt = 0; attempt < attempts; attempt++) {
    signal?.throwIfAborted();
    // Whole lines only: the host may be writing the next.
    const result = await storedLog(file, checkpoint.count, (handle) =>
      verifyAuditLogHandle(handle, file, signingPublicKey, {
        expect: { count: checkpoint.count, lastRecordHash: checkpoint.lastRecordHash },
      }).catch((error: unknown) => {
        // Its read errors are `cloister audit verify`'s --log's (USAGE): here the log's, as the count's.
        throw error instanceof UsageError ? cannotReadLog(file, error.cause) : error;
      }),
    );
    if (result !== null) {
      if (!result.ok) throw new Error(fileMessage(file, "audit log", result.error.message));
      return (
        `audit: ${counted(result.records, "record")} stored by the host in ${relative(process.cwd(), file)}; ` +
        "signatures, chain and completeness verified against a fresh checkpoint signed by the attested key " +
        "(hashes and decisions only)"
      );
    }
    await delay(100, undefined, { signal }).catch(() => {}); // aborted: thrown at the next turn or below
  }
  signal?.throwIfAborted();
  throw new Error(
    fileMessage(
      file,
      "audit log",
      `the enclave wrote ${counted(checkpoint.count, "record")}, the host stored fewer within ${(attempts / 10).toFixed(1)} s`,
    ),
  );
}

/**
 * `verify`'s result on the stored log, opened once, once it holds `enough` whole lines (newlines);
 * null while it holds fewer. The lines are counted a chunk at a time, never held whole nor decoded
 * (`verify` reads them, strictly, from the same open file). No file yet is too few: the host opens it
 * when it stores its first record. Any other error (EACCES, EISDIR, EIO, a FIFO or device in its
 * place) is one, naming the file: taken for "not yet", it would be reported as records the host
 * failed to store. `verify`'s own errors are thrown as they are.
 */
async function storedLog<T>(
  file: string,
  enough: number,
  verify: (handle: FileHandle) => Promise<T>,
): Promise<T | null> {
  let handle: FileHandle;
  try {
    // O_NONBLOCK: a FIFO put in the log's place (by whoever owns a directory above --dir) is opened
    // at once, not waited on for a writer that never comes, and refused below; for a file it changes
    // nothing. A directory is left to the read, which names it (EISDIR).
    handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw cannotReadLog(file, error);
  }
  // A close that fails after the read (or `verify`) failed does not hide that error.
  return closingAfter(handle, async () => {
    let lines = 0;
    let notFile: string | null = null;
    try {
      const info = await handle.stat();
      if (!info.isFile() && !info.isDirectory()) notFile = describeFileKind(info);
      const chunk = Buffer.alloc(64 * 1024);
      while (notFile === null && lines < enough) {
        const { bytesRead } = await handle.read(chunk, 0, chunk.length, null);
        if (bytesRead === 0) break;
        const bytes = chunk.subarray(0, bytesRead);
        for (let at = bytes.indexOf(0x0a); at !== -1; at = bytes.indexOf(0x0a, at + 1)) lines++;
      }
    } catch (error) {
      throw cannotReadLog(file, error);
    }
    // The host stores its log in a regular file only.
    if (notFile !== null) {
      throw new Error(fileMessage(file, "audit log", `cannot read (expected a regular file, found ${notFile})`));
    }
    return lines >= enough ? await verify(handle) : null;
  });
}

/** The stored log could not be opened or read: names the file and the error's code. */
function cannotReadLog(file: string, error: unknown): Error {
  return new Error(fileMessage(file, "audit log", `cannot read (${fileErrorCause(error)})`), { cause: error });
}

/** The key broker's log line for the release this deployment's enclave got, if any. */
function releaseLogged(
  logs: readonly string[],
): { keyId: string; tee: string; simulated: boolean; measurement: string } | null {
  for (const line of logs) {
    if (!line.startsWith("[kbs] {")) continue;
    try {
      const entry = JSON.parse(line.slice("[kbs] ".length)) as Record<string, unknown>;
      if (entry.event === "release" && entry.outcome === "released") {
        return entry as unknown as { keyId: string; tee: string; simulated: boolean; measurement: string };
      }
    } catch {
      // not a log entry
    }
  }
  return null;
}

/** What `cloister demo` runs: boot, then the demo on what booted; its tests give their own. */
export interface DemoSteps {
  readonly boot: typeof boot;
  readonly show: typeof showDemo;
}

export async function runDemo(
  options: UpOptions & { prompt: string },
  steps: DemoSteps = { boot, show: showDemo },
): Promise<void> {
  const started = performance.now();
  const logs: string[] = [];
  // A child that, stopped, does not exit 0 fails the demo (1), as it fails `up`, once its answer is shown.
  const stops = stopFailures();
  // Ctrl-C, SIGTERM or its output closed, during boot or after it: what it started is stopped as
  // `up` stops it (the enclave removes its private model copy) before it exits as a command stopped
  // early (130, 143, 141; 1 when a child failed as it stopped). Left to the signal's default action,
  // it died at once, and its children stopped on their own after it had gone, the enclave's
  // decrypted copy of the model still there meanwhile.
  const asked = stopsAskedFor(stops.failed);
  const stoppedEarly = (reason: StopReason) => {
    say("stopped: every process it started has exited");
    process.exitCode = stops.failed() ? 1 : STOPPED_EXIT_CODE[reason];
  };
  let deployment: RunningDeployment;
  try {
    deployment = await stoppedIfAborted(
      steps.boot(options, (line) => logs.push(line), asked.boot, stops.onStopFailure, interruptedBy(asked)),
      asked.boot,
    );
  } catch (error) {
    if (!asked.boot.aborted || !isStop(error, asked)) {
      // Its children's lines were only kept: what failed is said with their last ones (the failing
      // child's, and the others', a key broker's refusal among them, which an enclave's error points to).
      sayLastLines(logs);
      throw error;
    }
    stoppedEarly(asked.reason() as StopReason);
    return;
  }
  asked.booted();
  // The demo ends at the first stop asked for: its request is aborted, and nothing more of it is
  // written after `shutting down` (its answer, the audit check, "demo finished" came after it).
  const demoStopped = new AbortController();
  void asked.signalled.then((reason) => demoStopped.abort(reason));
  const shown = steps.show({ deployment, prompt: options.prompt, logs, started, signal: demoStopped.signal });
  shown.catch(() => {}); // raced below; its failure after a stop is the stop's
  const reason = await Promise.race([shown.then(() => null), asked.signalled]).catch(async (error: unknown) => {
    sayLastLines(logs);
    asked.stopping("demo failed", { failed: true });
    await deployment.stop();
    throw error;
  });
  if (reason !== null) say(`shutting down (${reason}) …`);
  // A Ctrl-C as it stops after the demo finished is said, as during its other stops (it said nothing).
  else asked.stopping("demo finished", { failed: false });
  await deployment.stop();
  if (reason !== null) stoppedEarly(asked.reason() ?? reason);
  else if (stops.failed()) process.exitCode = 1;
}

/** Says the last 20 lines demo kept of its children's (`[name] …`), when it fails. */
function sayLastLines(logs: readonly string[]): void {
  for (const line of logs.slice(-20)) say(line);
}

/**
 * What `cloister demo` does with the deployment it booted: verify, ask, check the audit log, until
 * `signal` (the first stop asked for) is aborted: then its verification or its request is aborted
 * (connect's signal, chat's), nothing more is sent, and nothing more is written, not even an answer
 * that was on its way. `connectTo`: the SDK's connect, or its tests' own.
 */
export async function showDemo(options: {
  readonly deployment: Pick<RunningDeployment, "hostUrl" | "files">;
  readonly prompt: string;
  readonly logs: readonly string[];
  readonly started: number;
  readonly signal: AbortSignal;
  readonly connectTo?: typeof connect;
}): Promise<void> {
  const { deployment, prompt, logs, started, signal } = options;
  const session = await (options.connectTo ?? connect)({
    url: deployment.hostUrl,
    policy: deployment.files.policy,
    apiKey: deployment.files.apiKey,
    signal,
  });
  let midLine = false;
  const out = {
    write: (text: string) => {
      if (signal.aborted || text === "") return;
      process.stdout.write(text);
      midLine = !text.endsWith("\n");
    },
  };
  // A part of the answer written when the stop comes, or when it fails, ends its line, so `shutting
  // down` or its error (stderr) and the shell's prompt start on their own. The listener goes when it
  // ends: a stop after it failed (demo stops what it started) wrote a newline after its error.
  const endLine = () => {
    if (midLine) process.stdout.write("\n");
    midLine = false;
  };
  signal.addEventListener("abort", endLine, { once: true });
  // The answer (and the prompt echoed) as chat prints them: visibly on a terminal (untrustedTextWriter).
  const answer = untrustedTextWriter({ write: out.write, isTTY: process.stdout.isTTY });
  try {
    out.write(`\nVerified the enclave before sending anything:\n${describeEnclave(session.enclave)}\n`);
    const release = releaseLogged(logs);
    if (release !== null) {
      out.write(
        `  key broker   released model key "${release.keyId}" to this boot only after verifying its attestation ` +
          `(${release.tee}${release.simulated ? ", simulated" : ""}, ` +
          `measurement ${String(release.measurement).slice(0, 16)}…); the enclave reads only the sealed file\n`,
      );
    }
    out.write("\n> ");
    answer.write(`${prompt}\n`);
    for await (const event of session.chat([{ role: "user", content: prompt }], { maxTokens: 64, signal })) {
      if (event.type === "text") answer.write(event.text);
      else {
        answer.end();
        out.write(
          `\n\n(sealed end to end: ${event.usage.promptTokens} prompt + ` +
            `${event.usage.completionTokens} completion tokens, ` +
            `first token after ${event.usage.ttftMs.toFixed(1)} ms inside the enclave; every frame authenticated)\n`,
        );
      }
    }
    signal.throwIfAborted(); // no audit check asked for after the stop
    out.write(`${await checkAudit(deployment.files.dir, session, signal)}\n`);
    out.write(`demo finished in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
    // What a new user does next (it ended on the time alone): the commands README's Quick start shows.
    out.write(
      "next: keep a deployment running with `npx cloister up`, then use `npx cloister attest`, `chat` " +
        'or the SDK from a second terminal (README: "Quick start", "Using the SDK")\n',
    );
  } finally {
    answer.end();
    signal.removeEventListener("abort", endLine);
    endLine();
  }
}
