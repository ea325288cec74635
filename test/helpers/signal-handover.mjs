/**
 * Run with `node --import tsx`: the start-up's stop handlers (stopDuringBoot) are set, the process
 * sends itself SIGTERM (node has received it once kill returns; its dispatch waits for the event
 * loop), then the start-up hands its signals to a serving handler by handOverSignals. Prints which
 * handler took the SIGTERM: "serving", "start-up", or "none" once the loop has waited 2 s with no
 * dispatch (the signal dropped with node's closed handle, as when host/run.ts and enclave/run.ts
 * removed the start-up's listeners first).
 */
import { handOverSignals, stopDuringBoot } from "../../enclave/http.ts";

const endBootStop = stopDuringBoot(() => {
  process.stdout.write("start-up\n");
  process.exit(3);
});
process.kill(process.pid, "SIGTERM");
const serve = () =>
  process.on("SIGTERM", () => {
    process.stdout.write("serving\n");
    process.exit(0);
  });
handOverSignals(endBootStop, serve);
setTimeout(() => {
  process.stdout.write("none\n");
  process.exit(1);
}, 2000);
