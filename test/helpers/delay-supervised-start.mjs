/**
 * Preloaded (`node --import`) into a `cloister` process: a process that `cloister up` started (its
 * environment's CLOISTER_SUPERVISED names its parent, up) waits before its command runs, so it has
 * installed no signal handler yet and a SIGTERM kills it by the signal's default action, as a stop in
 * up's first moments does for real. Any other process (up itself) starts at once.
 * It waits as long as its parent lives (at most 110 s, under the suite's 120 s test timeout): a fixed
 * 20 s ran out under a loaded full run before the test's signal came, and the child, past
 * bin/cloister.js's first lines, then ignored the Ctrl-C the test meant to kill it. Once its parent is
 * gone it goes on, and bin/cloister.js's first lines find up gone and do not start the command.
 * With CLOISTER_TEST_RELEASE, it says "held before bin/cloister.js" on stderr as it starts to wait,
 * and goes on as soon as that file exists (within 20 s), to run bin/cloister.js's first lines.
 */
import { existsSync, writeSync } from "node:fs";

if (process.env.CLOISTER_SUPERVISED === `supervisor-pid:${process.ppid}`) {
  const release = process.env.CLOISTER_TEST_RELEASE;
  if (release !== undefined) writeSync(2, "held before bin/cloister.js\n");
  const parent = process.ppid;
  const until = Date.now() + (release === undefined ? 110_000 : 20_000);
  // process.ppid is read once, at start: whether the parent lives is asked of the kernel.
  const parentLives = () => {
    try {
      process.kill(parent, 0);
      return true;
    } catch {
      return false;
    }
  };
  const held = () => (release === undefined ? parentLives() : !existsSync(release));
  while (Date.now() < until && held()) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
