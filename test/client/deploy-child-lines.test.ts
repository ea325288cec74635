/**
 * `cloister up` (and `demo`) passes its children's stderr and stdout lines on to its own stderr,
 * each after the child's name (client/cli/child-lines.ts childLogLine). Those lines carry text from
 * requests and from operators' files: on a terminal what it acts on or hides is escaped (as the
 * host's own log lines and an answer are: client/cli/terminal-text.ts); to a pipe or a file, the
 * exact line.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { childLogLine, stopFailures } from "../../client/cli/child-lines.ts";

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

describe("up's line for a child that failed as it stopped (stopFailures), which quotes the child's last line", () => {
  const wasTTY = process.stderr.isTTY;
  afterEach(() => {
    (process.stderr as { isTTY: boolean }).isTTY = wasTTY;
    vi.restoreAllMocks();
  });

  /** What onStopFailure writes to stderr, `terminal` or not, for a child whose last line is `last`. */
  const said = (terminal: boolean, last: string | null): string => {
    (process.stderr as { isTTY: boolean }).isTTY = terminal;
    const lines: string[] = [];
    vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
      lines.push(String(chunk));
      return true;
    });
    const stops = stopFailures();
    stops.onStopFailure("enclave", "exit code 1", last);
    expect(stops.failed()).toBe(true);
    return lines.join("");
  };

  it("on a terminal: the last line with every control and format character escaped, as childLogLine", () => {
    expect(said(true, LINE)).toBe(
      `enclave failed as it stopped (exit code 1): ${childLogLine("x", LINE, true).slice(4)}\n`,
    );
    expect(said(true, "tab\there")).toBe("enclave failed as it stopped (exit code 1): tab\\u0009here\n");
  });

  it("to a pipe or a file: the exact line; no line, no colon", () => {
    expect(said(false, LINE)).toBe(`enclave failed as it stopped (exit code 1): ${LINE}\n`);
    expect(said(true, null)).toBe("enclave failed as it stopped (exit code 1)\n");
  });
});
