import { describe, expect, it } from "vitest";
import { createCommandRunner } from "../../attestation/providers/command-runner.ts";
import { rejection } from "../helpers/attestation.ts";

/** The runner with Node itself as the tool, so no tpm2-tools are needed. */
describe("createCommandRunner", () => {
  it("says a tool killed by its timeout timed out (TPM_COMMAND_TIMEOUT), not that it exited 128", async () => {
    const run = createCommandRunner({ timeoutMs: 300 });
    const error = await rejection(run(process.execPath, ["-e", "setTimeout(() => {}, 10_000)"]));
    expect(error.code).toBe("TPM_COMMAND_TIMEOUT");
    expect(error.message).toContain("expected it to finish within 300 ms");
    expect(error.message).toContain("SIGTERM");
  });

  it("kills a tool that ignores the timeout's SIGTERM with SIGKILL after a grace period", async () => {
    const run = createCommandRunner({ timeoutMs: 200, killGraceMs: 200 });
    // The tool never ends on its own and ignores SIGTERM: only the SIGKILL the message names ends it.
    const error = await rejection(run("/bin/sh", ["-c", "trap '' TERM; while :; do sleep 0.05; done"]));
    expect(error.code).toBe("TPM_COMMAND_TIMEOUT");
    expect(error.message).toContain("SIGKILL");
  });

  it("does not call a tool that died of another signal a timeout, even when that is seen after the deadline", async () => {
    const run = createCommandRunner({ timeoutMs: 300 });
    const pending = run("/bin/sh", ["-c", "kill -KILL $$"]);
    // The event loop is held past the deadline, so the exit is handled only after it (and after the
    // timer has fired on the already dead child).
    const until = performance.now() + 1_000;
    while (performance.now() < until) {
      // busy wait
    }
    const result = await pending;
    expect(result.exitCode).toBe(128);
  });

  it("says a tool that is not installed is missing (TPM_TOOL_MISSING), naming it", async () => {
    const run = createCommandRunner({ timeoutMs: 10_000 });
    const error = await rejection(run("cloister-no-such-tpm2-tool", []));
    expect(error.code).toBe("TPM_TOOL_MISSING");
    expect(error.message).toBe(
      "cloister-no-such-tpm2-tool: expected the program on PATH, found none (install tpm2-tools)",
    );
  });

  it("returns a tool's own exit status and stderr", async () => {
    const run = createCommandRunner({ timeoutMs: 10_000 });
    const result = await run(process.execPath, ["-e", "process.stderr.write('no such index'); process.exit(3)"]);
    expect(result.exitCode).toBe(3);
    expect(result.stderr).toBe("no such index");
  });
});
