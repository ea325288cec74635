/**
 * Untrusted text on a terminal: a model's answer (which a prompt injection can steer), an enclave's
 * error detail, a host's words. A terminal acts on some characters instead of showing them: ESC
 * starts sequences that write the clipboard (OSC 52), set the window title, make hyperlinks, move
 * the cursor over text already shown; other C0 and C1 controls (U+009B is CSI) do likewise, a lone
 * carriage return writes over its line, and bidirectional controls (U+202E) show text as other
 * text. Here each such character is written as a visible \u escape instead (as --json and
 * models/errors.ts printableField write them), on a terminal only: a pipe or a file gets the exact
 * text, every character, for the program or the user who asked for it (`cloister chat … | cat`
 * gives them to the terminal too, on purpose). Platform-neutral; no import.
 */

/**
 * What a terminal may act on or shows as nothing (as attestation/untrusted-text.ts INVISIBLE:
 * control, format, line and paragraph separator characters; and a lone surrogate, which is no
 * character at all), but a line feed, a tab, and a carriage return right before a line feed (a
 * CRLF line end shows as one): what keeps an answer's lines and indentation as they read. The zero
 * width joiner and non-joiner (U+200D, U+200C) stay too: a terminal acts on neither, and they are
 * part of the text they sit in (emoji sequences, Persian and Indic words), which escaping breaks.
 */
const ACTED_ON = /[^\P{Cc}\n\t\r]|\r(?!\n)|[\p{Zl}\p{Zp}\p{Cs}]|(?![\u200c\u200d])\p{Cf}/gu;
/** ACTED_ON, line feeds, tabs and every carriage return included: what one line of a message must not hold. */
const NOT_ON_ONE_LINE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu;

/** `char` as a visible escape: `\u001b`, or `\u{e0041}` beyond the BMP. */
function escaped(char: string): string {
  const code = char.codePointAt(0) as number;
  return code > 0xffff ? `\\u{${code.toString(16)}}` : `\\u${code.toString(16).padStart(4, "0")}`;
}

/** `text` with each character a terminal would act on or hide (ACTED_ON) as a visible escape; lines and tabs kept. */
export function visibleOnTerminal(text: string): string {
  return text.replace(ACTED_ON, escaped);
}

/** `text` as one line of a message: every control and format character escaped, line breaks and tabs too. */
export function visibleOnOneLine(text: string): string {
  return text.replace(NOT_ON_ONE_LINE, escaped);
}

/** Where untrusted text streams to: a Writable, or what writes to one (`isTTY` its own or its stream's). */
export interface TextOutput {
  write(text: string): unknown;
  readonly isTTY?: boolean;
}

/** Writes streamed untrusted text, a chunk at a time (untrustedTextWriter). */
export interface UntrustedTextWriter {
  write(text: string): void;
  /** Writes what was held back (a lone high surrogate, a final carriage return), as it is then. */
  end(): void;
}

/**
 * A writer of untrusted text that arrives in chunks (an answer's), to `output`: on a terminal
 * (`output.isTTY`) with what it acts on made visible (visibleOnTerminal), else exactly. A chunk is
 * written at once but for its last character when that is a high surrogate (the character's other
 * half comes next: written apart, each half would be written as U+FFFD, and a tag character such as
 * U+E0041 would pass unseen) or, on a terminal, a carriage return (shown as a line end before a line
 * feed, else escaped): held until the next chunk or end(). An escape sequence split across chunks
 * needs no more: its ESC is escaped, and what follows it is only text.
 */
export function untrustedTextWriter(output: TextOutput): UntrustedTextWriter {
  const terminal = output.isTTY === true;
  let held = "";
  const flush = (text: string) => {
    if (text !== "") output.write(terminal ? visibleOnTerminal(text) : text);
  };
  return {
    write(text) {
      const all = held + text;
      const last = all.charCodeAt(all.length - 1);
      const hold = (last >= 0xd800 && last <= 0xdbff) || (terminal && last === 0x0d);
      held = hold ? all.slice(-1) : "";
      flush(hold ? all.slice(0, -1) : all);
    },
    end() {
      const text = held;
      held = "";
      flush(text);
    },
  };
}
