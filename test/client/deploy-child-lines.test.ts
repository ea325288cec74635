/**
 * `cloister up` (and `demo`) passes its children's stderr and stdout lines on to its own stderr,
 * each after the child's name (client/cli/deploy.ts childLogLine). Those lines carry text from
 * requests and from operators' files: on a terminal what it acts on or hides is escaped (as the
 * host's own log lines and an answer are: client/cli/terminal-text.ts); to a pipe or a file, the
 * exact line.
 */
import { describe, expect, it } from "vitest";
import { childLogLine } from "../../client/cli/deploy.ts";

/** A log line (JSON, as the host writes it) with a string from a request: OSC 52, CSI, U+202E, U+200B, a tag. */
const LINE = '{"type":"access","model":"a\u001b]52;c;eA==\u0007b\u001b[2J\u009bc\u202etxt.exe\u200b\u{e0041}"}';

describe("childLogLine", () => {
  it("on a terminal: every control and format character escaped, on one line", () => {
    expect(childLogLine("host", LINE, true)).toBe(
      '[host] {"type":"access","model":"a\\u001b]52;c;eA==\\u0007b\\u001b[2J\\u009bc\\u202etxt.exe\\u200b\\u{e0041}"}',
    );
    expect(childLogLine("enclave-1:stdout", "tab\there", true)).toBe("[enclave-1:stdout] tab\\u0009here");
  });

  it("to a pipe or a file: the exact line", () => {
    expect(childLogLine("host", LINE, false)).toBe(`[host] ${LINE}`);
    expect(childLogLine("kbs:stdout", "tab\there", false)).toBe("[kbs:stdout] tab\there");
  });

  it("an escaped JSON line still parses to the same value (cloister demo reads the key broker's lines)", () => {
    const shown = childLogLine("kbs", LINE, true).slice("[kbs] ".length);
    // JSON escapes controls in strings itself; a raw one is no JSON at all, so only format characters matter here.
    const json = JSON.stringify({ event: "release", name: "x\u202ey\u200b" });
    expect(JSON.parse(childLogLine("kbs", json, true).slice("[kbs] ".length))).toEqual(JSON.parse(json));
    expect(shown).not.toMatch(/[\p{Cc}\p{Cf}]/u);
  });
});
