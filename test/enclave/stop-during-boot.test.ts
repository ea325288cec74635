/**
 * stopDuringBoot (enclave/http.ts): the first stop asked for (SIGINT, SIGTERM, output closed) calls
 * `stop`, a second `atOnce`. With `countOutputClosed: false` (`cloister up`, `demo`) output closed
 * is never a second stop: after a signal it is ignored, and before one it calls `stop`, the signals
 * counted on their own after it.
 */
import { afterEach, describe, expect, it } from "vitest";
import { onOutputClosed } from "../../client/cli/output.ts";
import { stopDuringBoot } from "../../enclave/http.ts";
import { closeOutput } from "../helpers/held.ts";

let ends: (() => void)[] = [];
afterEach(() => {
  for (const end of ends) end();
  ends = [];
  onOutputClosed(() => {})();
});

/** The calls of `stop` and `atOnce`, in order, for the stops `ask` makes. */
function calls(options: { countOutputClosed?: boolean }, ask: () => void): string[] {
  const seen: string[] = [];
  ends.push(
    stopDuringBoot(
      (reason) => seen.push(`stop ${reason}`),
      (reason) => seen.push(`atOnce ${reason}`),
      options,
    ),
  );
  ask();
  return seen;
}

const sigint = () => process.emit("SIGINT", "SIGINT");

describe("stopDuringBoot", () => {
  it("by default, output closed after a signal is the second stop (the enclave, the host)", () => {
    expect(
      calls({}, () => {
        sigint();
        closeOutput();
      }),
    ).toEqual(["stop SIGINT", "atOnce output closed"]);
  });

  it("countOutputClosed false: output closed after a signal is ignored; a second signal exits at once", () => {
    expect(
      calls({ countOutputClosed: false }, () => {
        sigint();
        closeOutput();
        sigint();
      }),
    ).toEqual(["stop SIGINT", "atOnce SIGINT"]);
  });

  it("countOutputClosed false: output closed first calls stop; the first signal after it stops, the second exits at once", () => {
    expect(
      calls({ countOutputClosed: false }, () => {
        closeOutput();
        sigint();
        process.emit("SIGTERM", "SIGTERM");
      }),
    ).toEqual(["stop output closed", "stop SIGINT", "atOnce SIGTERM"]);
  });
});
