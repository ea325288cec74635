/**
 * JSON text given as configuration (a policy, a manifest, a key file) that does not parse: V8's
 * SyntaxError quotes the input (`Unexpected token 's', "{"a": sk-live-SE"... is not valid JSON`),
 * so an error that kept it as its cause would show a pasted secret wherever it is inspected
 * (util.inspect prints causes). parseJsonText throws a SyntaxError of its own instead, which says
 * where the text went wrong, never what it holds. Platform-neutral (the browser bundle has it).
 *
 * It also refuses an object that names a member twice: JSON.parse keeps the last, while whoever
 * reads the file (or reviews a diff that adds a member further down) takes the first, and these
 * files decide what is trusted (RFC 7493 §2.3).
 */
import { describeMemberPath, findDuplicateMember, type NamesNotShownBelow } from "./json-duplicates.ts";
import { decodeUtf8 } from "./utf8.ts";

/** JSON text with a member named twice in one object; its message names the member's path, not its value. */
export class DuplicateMemberError extends SyntaxError {
  override readonly name = "DuplicateMemberError";
  // The path is not kept on the error: a member name may be anything the file holds (a pasted
  // secret), and callers attach this error as a cause, whose own properties util.inspect prints.
  constructor(path: readonly (string | number)[], index: number, namesNotShownBelow: NamesNotShownBelow = []) {
    super(
      `${describeMemberPath(path, namesNotShownBelow)} appears twice in one object (the second at position ${index}): expected each member once (JSON.parse would use the last while a reader sees the first); remove one`,
    );
  }
}

/**
 * Where V8's JSON.parse error says the text went wrong, as a message may show it: "at position N",
 * "it ends early", or "" when V8 names no position (its message then quotes the text).
 */
function whereJsonFailed(error: unknown): string {
  const message = error instanceof Error ? error.message : "";
  // Only V8's own suffix: a message that names no position quotes the text, which may itself read
  // "at position N".
  const position = /(?:in|after) JSON at position (\d+)(?: \(line \d+ column \d+\))?$/.exec(message);
  if (position !== null) return `at position ${position[1]}`;
  if (message.startsWith("Unexpected end of JSON input")) return "it ends early";
  return "";
}

/**
 * A JSON.parse SyntaxError's message without the text it quotes: "not valid JSON" and where ("at
 * position 22", "it ends early") when V8 says; for callers that parse with JSON.parse itself.
 */
export function jsonSyntaxProblem(error: SyntaxError): string {
  const where = whereJsonFailed(error);
  return where === "" ? "not valid JSON" : `not valid JSON (${where})`;
}

/**
 * JSON.parse, except that text that does not parse throws a SyntaxError whose message is "not valid
 * JSON" and where ("at position 22", "it ends early"), with no cause: nothing of the text; and text
 * with a member named twice in one object throws a DuplicateMemberError (a SyntaxError) naming its path
 * (below a path of `namesNotShownBelow`, wherever it occurs, only that path: describeMemberPath).
 */
export function parseJsonText(text: string, options: { namesNotShownBelow?: NamesNotShownBelow } = {}): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    throw new SyntaxError(jsonSyntaxProblem(error));
  }
  const duplicate = findDuplicateMember(text);
  if (duplicate !== null) {
    throw new DuplicateMemberError(duplicate.path, duplicate.index, options.namesNotShownBelow);
  }
  return value;
}

/**
 * Why parseJsonText refused a file, for a message that has named the file: a member named twice
 * as DuplicateMemberError says it, else "expected EXPECTED, found text that is not valid JSON (…)".
 */
export function jsonTextRefusal(error: unknown, expected: string): string {
  if (error instanceof DuplicateMemberError) return error.message;
  return `expected ${expected}, found text that is ${(error as Error).message}`;
}

/**
 * Bytes as JSON, read so that they mean one thing to every reader: strict UTF-8 (decodeUtf8: a
 * lossy decoder turns a byte that is not into U+FFFD, which another reader may not), no byte order
 * mark, and each member once per object at every depth (parseJsonText: JSON.parse keeps the last of
 * two, another reader the first). For bytes a signature covers or a hash commits to (a JWS part:
 * attestation/jws.ts; the HCL report's runtime data: azure/hcl.ts), which could otherwise say two
 * things. Throws a SyntaxError whose message says what was expected and where it went wrong (a byte
 * offset, a member path or a position), never what the bytes hold.
 */
export function parseUtf8Json(bytes: Uint8Array): unknown {
  const text = decodeUtf8(bytes);
  if (typeof text !== "string") {
    throw new SyntaxError(`expected UTF-8 JSON, found bytes that are not UTF-8 (from offset ${text.notUtf8At})`);
  }
  if (text.startsWith("\uFEFF")) {
    throw new SyntaxError("expected UTF-8 JSON, found a byte order mark before it (offsets 0 to 2)");
  }
  try {
    return parseJsonText(text);
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    throw new SyntaxError(jsonTextRefusal(error, "UTF-8 JSON"));
  }
}
