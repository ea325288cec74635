/**
 * The `cloister` command's entry (bin/cloister.js imports it): runs the program of
 * {@link ./program.ts} on this process's arguments and sets its exit code.
 */
import { stopWhenOutputCloses, stopWhenParentExits } from "./output.ts";
import { main } from "./program.ts";

stopWhenParentExits();
stopWhenOutputCloses();
process.exitCode = await main(process.argv.slice(2));
