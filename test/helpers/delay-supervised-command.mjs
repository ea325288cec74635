/**
 * Preloaded (`node --import`) into a `cloister` process: a process that `cloister up` started (its
 * environment's CLOISTER_SUPERVISED names its parent, up) runs bin/cloister.js's first lines, then
 * waits 20 s before it loads its command (client/cli/main.ts): it has installed what bin/cloister.js
 * installs, none of its command's signal handlers. It writes "held before its command" on stderr as
 * it starts to wait. Any other process (up itself) starts at once. With CLOISTER_TEST_HOLD_AT=tsx it waits
 * instead before bin/cloister.js has loaded tsx (its first import), having run none of its lines.
 * With CLOISTER_TEST_RELEASE, it goes on as soon as that file exists (within the 20 s).
 */
import { existsSync, writeSync } from "node:fs";
import { register } from "node:module";
import { isMainThread } from "node:worker_threads";

// This file is also the hooks module: node loads it again in its hooks thread, which registers nothing.
if (isMainThread && process.env.CLOISTER_SUPERVISED === `supervisor-pid:${process.ppid}`) register(import.meta.url);

/** Node's module resolution hook (in its hooks thread): holds the resolution of the command's entry. */
export async function resolve(specifier, context, nextResolve) {
  const held =
    process.env.CLOISTER_TEST_HOLD_AT === "tsx"
      ? specifier === "tsx/esm/api"
      : specifier.endsWith("/client/cli/main.ts");
  if (held) {
    writeSync(2, "held before its command\n");
    const release = process.env.CLOISTER_TEST_RELEASE;
    const until = Date.now() + 20_000;
    while (Date.now() < until && !(release !== undefined && existsSync(release))) {
      await new Promise((resolveHold) => setTimeout(resolveHold, 20));
    }
  }
  return nextResolve(specifier, context);
}
