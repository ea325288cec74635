/**
 * Preloaded (`node --import`) into every process of a `cloister up` or `demo` with two enclaves
 * (its children inherit NODE_OPTIONS); up itself, and any process but an enclave, starts at once.
 * The enclave that starts first (creates `${CLOISTER_TEST_RELEASE}.first`), once the other waits, with
 * CLOISTER_TEST_BOOT:
 * - `exit`: crashes (an uncaught error: its stack on stderr, exit 1), a boot failure of its own;
 * - `hold`: says `held, pid N` on stderr and waits 60 s with no signal handler, so any SIGINT kills it.
 * The other enclave waits too, ignoring SIGINT (it creates `${CLOISTER_TEST_RELEASE}.waiting` once
 * it does), and stops slowly: on SIGTERM it creates `${CLOISTER_TEST_RELEASE}.stopping` and exits 0
 * only once the file CLOISTER_TEST_RELEASE exists, so a test acts while the supervisor stops it, for
 * as long as it needs. Neither ever runs its command: each exits (3) after its wait.
 */
import { closeSync, existsSync, openSync, writeFileSync, writeSync } from "node:fs";

/** Whether this process created `path` (it did not exist). */
function claimed(path) {
  try {
    closeSync(openSync(path, "wx"));
    return true;
  } catch {
    return false;
  }
}

if (process.argv[2] === "enclave") {
  const release = process.env.CLOISTER_TEST_RELEASE;
  if (claimed(`${release}.first`)) {
    // Once the other enclave handles signals, so that the supervisor's stop finds it waiting.
    while (!existsSync(`${release}.waiting`)) await new Promise((resolve) => setTimeout(resolve, 20));
    if (process.env.CLOISTER_TEST_BOOT === "exit") throw new Error("enclave boot failed on purpose (test)");
    writeSync(2, `held, pid ${process.pid}\n`);
  } else {
    process.on("SIGINT", () => {});
    process.on("SIGTERM", () => {
      writeFileSync(`${release}.stopping`, "");
      setInterval(() => {
        if (existsSync(release)) process.exit(0);
      }, 20);
    });
    writeFileSync(`${release}.waiting`, "");
  }
  await new Promise((resolve) => setTimeout(resolve, 60_000));
  process.exit(3);
}
