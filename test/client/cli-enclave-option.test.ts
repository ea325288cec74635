/**
 * `--enclave KEYID` of `cloister attest` and `cloister audit checkpoint`: an enclave key id as the
 * host routes by it (32 lower-case hex digits), checked before anything is read or sent, the value
 * found shown on one line, with where a key id is found (a boot id given for one named as such); both
 * commands' help names it, its form, where to find it and when the host refuses it.
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

    it(`${command.join(" ")}: says where a key id is found, and names a boot id given for one`, async () => {
      const where =
        "; take it from cloister attest (key id), the host's log (pool: enclave N is ready (key id …)) or its /healthz (enclaves)";
      const bootId = await run([...command, ...CONNECTION, "--enclave", "ffafb1b13f9045ca"]);
      expect(bootId.code).toBe(2);
      expect(bootId.stderr).toContain(
        `found "ffafb1b13f9045ca" (a boot id, as an audit log's file name has: not a key id)${where}`,
      );
      const other = await run([...command, ...CONNECTION, "--enclave", "XYZ"]);
      expect(other.code).toBe(2);
      expect(other.stderr).toContain(`found "XYZ"${where}`);
    });

    it(`${command.join(" ")} --help: names --enclave, with an example`, async () => {
      const { code, stdout } = await run([...command, "--help"]);
      expect(code).toBe(0);
      expect(stdout).toContain("--enclave <key-id>");
      expect(stdout).toMatch(/--enclave [0-9a-f]{32}/);
    });

    it(`${command.join(" ")} --help: says what a key id looks like, where it is found and when the host refuses it`, async () => {
      const { stdout } = await run([...command, "--help"]);
      // Commander wraps the description: compared with white space runs as one space.
      const help = stdout.replace(/\s+/g, " ");
      for (const part of [
        "32 lower-case hex digits, not the 16 of a boot id that names its audit log",
        "cloister attest prints it, the host logs each member's, its /healthz lists them",
        "the key id of a member stopped or restarted (it boots with a new one) by the host (WRONG_ENCLAVE_KEY)",
      ]) {
        expect(help).toContain(part);
      }
    });
  }
});
