#!/usr/bin/env node
// Entry point of the `cloister` command. The sources are TypeScript run through tsx, so a fresh
// clone works after `npm ci` with no build step.

// A child of `cloister up` (CLOISTER_SUPERVISED) ignores the terminal's Ctrl-C, which reaches the
// whole process group: `up` stops its children in order (SIGTERM). Ignored from here on, not only
// once its command has installed its handlers (enclave/http.ts), a second or more later: Ctrl-C in
// up's first moments killed a child still loading, which up then took for one that failed. Before
// tsx is loaded too: a static import would be loaded before this line runs.
// Supervised only when the variable names this process's parent (`supervisor-pid:<up's pid>`,
// client/cli/deploy.ts childEnvironment): a CLOISTER_SUPERVISED=1 exported by accident in a shell
// made every command ignore Ctrl-C. From here on the command sees "1" when supervised (enclave/http.ts,
// output.ts stopWhenParentExits) and the supervisor's pid in CLOISTER_SUPERVISOR_PID, which
// stopWhenParentExits watches (the parent it would find itself, a second or more later, may be
// the one it was re-parented to when `up` was killed meanwhile); neither variable when not.
if (process.env.CLOISTER_SUPERVISED === `supervisor-pid:${process.ppid}`) {
  process.env.CLOISTER_SUPERVISED = "1";
  process.env.CLOISTER_SUPERVISOR_PID = String(process.ppid);
  process.on("SIGINT", () => {});
} else {
  delete process.env.CLOISTER_SUPERVISED;
  delete process.env.CLOISTER_SUPERVISOR_PID;
}

const { register } = await import("tsx/esm/api");
register();
await import("../client/cli/main.ts");
