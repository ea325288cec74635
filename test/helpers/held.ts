/** Events a test puts in its own order: a step held until the test lets it go on, an output closed by its reader. */
import { EventEmitter } from "node:events";
import { stopWhenOutputCloses } from "../../client/cli/output.ts";

/** A promise the test settles (`settle`), and one that resolves once `enter` is called (the step is held). */
export function held<T = void>() {
  let settle: (value: T) => void = () => {};
  let enter: () => void = () => {};
  const promise = new Promise<T>((resolve) => {
    settle = resolve;
  });
  const entered = new Promise<void>((resolve) => {
    enter = resolve;
  });
  return { promise, settle, entered, enter };
}

/**
 * The running command's output closed by its reader, as stopWhenOutputCloses sees it: an EPIPE on a
 * stream it watches (the shutdown registered with onOutputClosed runs, else process.exit(141)).
 */
export function closeOutput(): void {
  const stream = new EventEmitter();
  stopWhenOutputCloses([stream as NodeJS.WriteStream]);
  stream.emit("error", Object.assign(new Error("write EPIPE"), { code: "EPIPE" }));
}
