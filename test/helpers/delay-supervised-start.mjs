/**
 * Preloaded (`node --import`) into a `cloister` process: a process that `cloister up` started (its
 * environment's CLOISTER_SUPERVISED names its parent, up) waits 20 s before its command runs, so it
 * has installed no signal handler yet and a SIGTERM kills it by the signal's default action, as a
 * stop in up's first moments does for real. Any other process (up itself) starts at once.
 */
if (process.env.CLOISTER_SUPERVISED === `supervisor-pid:${process.ppid}`)
  await new Promise((resolve) => setTimeout(resolve, 20_000));
