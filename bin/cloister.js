#!/usr/bin/env node
// Entry point of the `cloister` command. The sources are TypeScript run through tsx, so a fresh
// clone works after `npm ci` with no build step.
import { readFileSync, writeSync } from "node:fs";

// A child of `cloister up` (CLOISTER_SUPERVISED) ignores the terminal's Ctrl-C, which reaches the
// whole process group: `up` stops its children in order (SIGTERM). Ignored from here on, not only
// once its command has installed its handlers (enclave/http.ts), a second or more later: Ctrl-C in
// up's first moments killed a child still loading, which up then took for one that failed. Before
// tsx is loaded too: a static import would be loaded before this line runs (node:fs, built in, is
// no module to load).
// Supervised only when the variable names this process's parent (`supervisor-pid:<up's pid>`,
// client/cli/deploy.ts childEnvironment): a CLOISTER_SUPERVISED=1 exported by accident in a shell
// made every command ignore Ctrl-C. From here on the command sees "1" when supervised (enclave/http.ts,
// output.ts stopWhenParentExits) and the supervisor's pid in CLOISTER_SUPERVISOR_PID, which
// stopWhenParentExits watches (the parent it would find itself, a second or more later, may be
// the one it was re-parented to when `up` was killed meanwhile); neither variable when not.
// A value of up's form (`supervisor-pid:` first) is read as up writes it: a pid from 1 to 4194303
// in decimal, no sign, space or leading zero. Any other such value (0, 0123, +1, " 123", 4194304 or
// more: pid_max is at most 4194304, PID_MAX_LIMIT, and pids are below it) is bad input, exit 2, the
// command not run: dropped, the command would run unsupervised; read as a pid, it would be a
// supervisor that "has gone" (exit 0, the command not run), and one of 17 digits or more a Number
// other than the one written. A value not of up's form (the old `1`, exported by accident in a
// shell) is no supervision: dropped. Help is still shown with such a value (a user debugging their
// environment needs it), the value named as a warning: asked for (`--help` or `-h` before any `--`,
// or `help` among the command path's words: `help audit`, `audit help verify`), only the command
// path's words (those before the first option) are kept and help asked of them, so no command
// runs, unsupervised, whatever the other words were (`--prompt-file --help`, where --help is an
// option's value).
const SUPERVISED_FORM = "supervisor-pid:";
const supervised = process.env.CLOISTER_SUPERVISED ?? "";
const written = supervised.startsWith(SUPERVISED_FORM) ? supervised.slice(SUPERVISED_FORM.length) : undefined;
const supervisor =
  written !== undefined && /^[1-9]\d{0,6}$/.test(written) && Number(written) < 4194304 ? written : undefined;
if (written !== undefined && supervisor === undefined) {
  // As written when short and ASCII (JSON-quoted: a space or a control shows), else by its length.
  const found = /^\d{8,}$/.test(written)
    ? `a pid of ${written.length} digits`
    : written.length <= 24 && [...written].every((char) => char.charCodeAt(0) < 0x7f)
      ? JSON.stringify(supervised)
      : `${SUPERVISED_FORM} and ${[...written].length} characters that are no pid`;
  const problem = `CLOISTER_SUPERVISED: expected supervisor-pid:<a pid from 1 to 4194303>, found ${found}`;
  const args = process.argv.slice(2);
  const beforeEnd = args.includes("--") ? args.slice(0, args.indexOf("--")) : args;
  const firstOption = args.findIndex((word) => word.startsWith("-"));
  const path = firstOption === -1 ? args : args.slice(0, firstOption);
  if (path.includes("help") || beforeEnd.includes("--help") || beforeEnd.includes("-h")) {
    process.argv.splice(2, args.length, ...(path[0] === "help" ? path : [...path, "--help"]));
    try {
      writeSync(2, `cloister: warning: ${problem}; help only is shown, any other command is refused\n`);
    } catch {
      // its stderr is closed: the help is still shown
    }
    delete process.env.CLOISTER_SUPERVISED;
    delete process.env.CLOISTER_SUPERVISOR_PID;
  } else {
    try {
      writeSync(2, `cloister: USAGE: ${problem}\n`);
    } catch {
      // its stderr is closed: the exit code still says it
    }
    process.exit(2);
  }
} else if (supervisor !== undefined && Number(supervisor) === process.ppid) {
  process.env.CLOISTER_SUPERVISED = "1";
  process.env.CLOISTER_SUPERVISOR_PID = String(process.ppid);
  process.on("SIGINT", () => {});
} else if (supervisor !== undefined && (process.ppid === 1 || !isRunning(Number(supervisor)))) {
  // Its up died before these lines ran: re-parented (to init, pid 1, or to a subreaper), it would
  // have run as an ordinary command, serving on with no one to stop it. It stops before it starts,
  // exit 0, as a supervised child stops once its up has gone (output.ts stopWhenParentExits). A variable
  // naming another process that runs (one inherited from another up) is no supervision: the
  // command runs, as an ordinary one.
  try {
    writeSync(2, `cloister: its supervisor (cloister up, pid ${supervisor}) has gone; not starting\n`);
  } catch {
    // up's end of the pipe is closed: no one is left to read it
  }
  process.exit(0);
} else {
  delete process.env.CLOISTER_SUPERVISED;
  delete process.env.CLOISTER_SUPERVISOR_PID;
}

const { register } = await import("tsx/esm/api");
register();
await import("../client/cli/main.ts");

/**
 * Whether process `pid` runs: it exists (signal 0; EPERM: another user's) and, where Linux's /proc
 * tells, is no zombie (an up that died and was not yet waited for by its own parent). Only a /proc of
 * this process's pid namespace tells: a host's /proc bind-mounted into a container (one sharing a
 * volume) shows another process as /proc/PID. /proc/self is this process whatever namespace /proc
 * is of, named by its pid there: process.pid only when it is this one's (as
 * models/process-owner.ts procIsThisNamespaces tells). Elsewhere, and with no /proc, signal 0 is
 * all there is.
 */
function isRunning(pid) {
  let permitted = true;
  try {
    process.kill(pid, 0);
  } catch (error) {
    if (error.code !== "EPERM") return false;
    permitted = false;
  }
  let self;
  try {
    self = procStat("self");
  } catch {
    return true; // no /proc (not Linux)
  }
  if (self.slice(0, self.indexOf(" ")) !== String(process.pid)) return true;
  try {
    const stat = procStat(pid);
    // "pid (comm) state …": the state follows the last ")" (comm may hold one).
    return stat[stat.lastIndexOf(")") + 2] !== "Z";
  } catch (error) {
    // Gone just now; or, when signal 0 was refused (EPERM: it runs), hidden from this user (/proc
    // mounted hidepid=2 shows no other user's process), as models/process-owner.ts ownerGone takes it.
    return error.code !== "ENOENT" || !permitted;
  }
}

/** /proc/PID/stat's text ("self": this process's). */
function procStat(pid) {
  return readFileSync(`/proc/${pid}/stat`, "utf8");
}
