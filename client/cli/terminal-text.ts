/**
 * Untrusted text on a terminal: a model's answer (which a prompt injection can steer), an enclave's
 * error detail, a host's words. A terminal acts on some characters instead of showing them: ESC
 * starts sequences that write the clipboard (OSC 52), set the window title, make hyperlinks, move
 * the cursor over text already shown; other C0 and C1 controls (U+009B is CSI) do likewise, a lone
 * carriage return writes over its line, and bidirectional controls (U+202E) show text as other
 * text. Here each such character is written as a visible \u escape instead (as --json and
 * models/errors.ts printableField write them), on a terminal only: a pipe or a file gets the exact
 * text, every character, for the program or the user who asked for it (`cloister chat … | cat`
 * gives them to the terminal too, on purpose). Platform-neutral; it imports only
 * attestation/untrusted-text.ts (platform-neutral and dependency-free too), for the one class of
 * invisible characters.
 */
import { INVISIBLE_CLASS } from "../../attestation/untrusted-text.ts";

/**
 * What a terminal may act on or shows as nothing (as attestation/untrusted-text.ts INVISIBLE:
 * control, format, line and paragraph separator characters; and a lone surrogate, which is no
 * character at all), but a line feed, a tab, and a carriage return right before a line feed (a
 * CRLF line end shows as one): what keeps an answer's lines and indentation as they read. The zero
 * width joiner and non-joiner (U+200D, U+200C) stay too: a terminal acts on neither, and they are
 * part of the text they sit in (emoji sequences, Persian and Indic words), which escaping breaks.
 */
const ACTED_ON = /[^\P{Cc}\n\t\r]|\r(?!\n)|[\p{Zl}\p{Zp}\p{Cs}]|(?![\u200c\u200d])\p{Cf}/gu;
/**
 * A subdivision flag that shows as itself: England's, Scotland's or Wales's (U+1F3F4, the tag
 * characters spelling gbeng, gbsct or gbwls, and U+E007F, cancel tag: UTS #51's RGI emoji tag
 * sequences, the only ones a font draws). Tag characters are format characters, so ACTED_ON alone
 * breaks the flag into escapes; yet they are invisible copies of ASCII, a channel for text a reader
 * cannot see ("ASCII smuggling", a prompt injection's hidden words): only these three stay, and
 * every other tag character is escaped. Any other sequence, even of a subdivision id's shape or a
 * valid id (California's, usca), shows as a black flag and nothing: a row of them would carry up to
 * seven hidden letters or digits each ("ignore" "allpre" "viousi"…).
 */
const FLAG_TAG_SEQUENCE =
  /\u{1f3f4}\u{e0067}\u{e0062}(?:\u{e0065}\u{e006e}\u{e0067}|\u{e0073}\u{e0063}\u{e0074}|\u{e0077}\u{e006c}\u{e0073})\u{e007f}/u;
/** A subdivision flag (captured, kept) or a character ACTED_ON. */
const FLAG_OR_ACTED_ON = new RegExp(`(${FLAG_TAG_SEQUENCE.source})|${ACTED_ON.source}`, "gu");
/** What may yet become a FLAG_TAG_SEQUENCE, at the end of a chunk: U+1F3F4 and up to five tag letters. */
const FLAG_BEGUN = /\u{1f3f4}[\u{e0061}-\u{e007a}]{0,5}$/u;
/**
 * ACTED_ON, line feeds, tabs and every carriage return included: what one line of a message must not
 * hold. attestation/untrusted-text.ts's INVISIBLE_CLASS, and a lone surrogate.
 */
const NOT_ON_ONE_LINE = new RegExp(`[${INVISIBLE_CLASS}\\p{Cs}]`, "gu");

/** `char` as a visible escape: `\u001b`, or `\u{e0041}` beyond the BMP. */
function escaped(char: string): string {
  const code = char.codePointAt(0) as number;
  return code > 0xffff ? `\\u{${code.toString(16)}}` : `\\u${code.toString(16).padStart(4, "0")}`;
}

/**
 * `text` with each character a terminal would act on or hide (ACTED_ON) as a visible escape; lines,
 * tabs and subdivision flags (FLAG_TAG_SEQUENCE) kept.
 */
export function visibleOnTerminal(text: string): string {
  return text.replace(FLAG_OR_ACTED_ON, (char, flag: string | undefined) => flag ?? escaped(char));
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
 * feed, else escaped) or the start of a subdivision flag (FLAG_BEGUN: kept whole, else escaped):
 * held until the next chunk or end(). An escape sequence split across chunks needs no more: its ESC
 * is escaped, and what follows it is only text.
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
      const cut = all.length - heldBack(all, terminal);
      held = all.slice(cut);
      flush(all.slice(0, cut));
    },
    end() {
      const text = held;
      held = "";
      flush(text);
    },
  };
}

/** How many code units at the end of `text` untrustedTextWriter holds for the next chunk. */
function heldBack(text: string, terminal: boolean): number {
  const last = text.charCodeAt(text.length - 1);
  const surrogate = last >= 0xd800 && last <= 0xdbff ? 1 : 0;
  if (!terminal) return surrogate;
  if (last === 0x0d) return 1;
  // U+1F3F4 and five tags are 12 code units: no flag begins further back.
  const tail = text.slice(Math.max(0, text.length - surrogate - 12), text.length - surrogate);
  const begun = FLAG_BEGUN.exec(tail);
  return begun === null ? surrogate : tail.length - begun.index + surrogate;
}
