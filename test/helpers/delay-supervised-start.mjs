/**
 * Preloaded (`node --import`) into a `cloister` process: a process that `cloister up` started (its
 * environment's CLOISTER_SUPERVISED names its parent, up) waits 20 s before its command runs, so it
 * has installed no signal handler yet and a SIGTERM kills it by the signal's default action, as a
 * stop in up's first moments does for real. Any other process (up itself) starts at once.
 * With CLOISTER_TEST_RELEASE, it says "held before bin/cloister.js" on stderr as it starts to wait,
 * and goes on as soon as that file exists (within the 20 s), to run bin/cloister.js's first lines.
 */
import { existsSync, writeSync } from "node:fs";

if (process.env.CLOISTER_SUPERVISED === `supervisor-pid:${process.ppid}`) {
  const release = process.env.CLOISTER_TEST_RELEASE;
  if (release !== undefined) writeSync(2, "held before bin/cloister.js\n");
  const until = Date.now() + 20_000;
  while (Date.now() < until && !(release !== undefined && existsSync(release))) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
