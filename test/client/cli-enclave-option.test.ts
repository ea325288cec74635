/**
 * `--enclave KEYID` of `cloister attest` and `cloister audit checkpoint`: an enclave key id as the
 * host routes by it (32 lower-case hex digits), checked before anything is read or sent, the value
 * found shown on one line; both commands' help names it.
 */
import { describe, expect, it } from "vitest";
import { inProcessCli } from "../helpers/cli-in-process.ts";

const run = inProcessCli();
/** Nothing listens on port 1: a value that passed the check would fail later, as a transport error. */
const CONNECTION = ["--url", "http://127.0.0.1:1", "--policy", "no-such-policy.json"];

describe("--enclave KEYID", () => {
  for (const command of [["attest"], ["audit", "checkpoint"]]) {
    it(`${command.join(" ")}: refuses what is not a key id as bad input (2), naming the option and what was found`, async () => {
      for (const [value, shown] of [
        ["XYZ", '"XYZ"'],
        ["0123456789ABCDEF0123456789ABCDEF", '"0123456789ABCDEF0123456789ABCDEF"'],
        ["0123456789abcdef", '"0123456789abcdef"'],
        ["0123456789abcdef0123456789abcde\u001b", '"0123456789abcdef0123456789abcde\\u001b"'],
      ] as const) {
        const { code, stderr } = await run([...command, ...CONNECTION, "--enclave", value]);
        expect({ code, stderr }).toEqual({
          code: 2,
          stderr: expect.stringContaining(
            `--enclave expects an enclave key id of 32 lower-case hex digits, found ${shown}`,
          ) as unknown as string,
        });
      }
    });

    it(`${command.join(" ")} --help: names --enclave, with an example`, async () => {
      const { code, stdout } = await run([...command, "--help"]);
      expect(code).toBe(0);
      expect(stdout).toContain("--enclave <key-id>");
      expect(stdout).toMatch(/--enclave [0-9a-f]{32}/);
    });
  }
});
