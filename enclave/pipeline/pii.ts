/**
 * PII filtering (DESIGN.md "The zero-trust pipeline", step 3): finds the manifest's entity types in
 * a prompt and, per `requestPolicy.pii.mode`, replaces each with a typed placeholder
 * (`[REDACTED_EMAIL]`), blocks the request naming only the entity types, or leaves it untouched.
 *
 * Detectors (each a regular expression for the shape plus, where one exists, a checksum):
 *  - email: local@domain.tld (dot-separated labels, alphabetic TLD of 2..63).
 *  - phone: international `+<country><digits>` with 8..15 digits in all (E.164) and single
 *    space/dot/dash separators; North-American (NANP) `(NXX) NXX-XXXX`, `NXX-NXX-XXXX`,
 *    `NXX.NXX.XXXX`, `NXX NXX XXXX`, optional `+1`/`1` prefix, area and exchange starting 2..9.
 *    Bare digit runs without separators are not phones (too many false positives).
 *  - credit_card: 13..19 digits, compact or grouped 4-4-4-4(-3) / 4-6-4(5) separated by spaces,
 *    dots or dashes (mixed too; a 4-4-4-4 number followed by a 3-digit code is replaced with it), starting with a card network prefix (2-series Mastercard, 3 Amex/Diners/JCB,
 *    4 Visa, 5 Mastercard/Maestro, 6 Discover/UnionPay/Maestro), Luhn checksum valid.
 *  - iban: 2 letters, 2 check digits, 11..30 alphanumerics (in groups of 4 or compact), 15..34
 *    characters in all, ISO 13616 mod-97 = 1, in either case.
 *  - us_ssn: AAA-GG-SSSS (dashes, dots or spaces, one kind), excluding area 000, 666 and 900..999, group 00 and
 *    serial 0000.
 *  - ip_address: dotted-quad IPv4 (0..255, no leading zeros, not part of a longer dotted run, not
 *    after `v`/`version`/`release`/`build`); IPv6 in RFC 4291 text forms (at most one `::`,
 *    embedded IPv4 tail allowed) — a `h:h:h` time or a MAC address is not an IPv6 address.
 *  - secret_key: PEM private key blocks (with their header lines; a block cut off without its END
 *    line is redacted to the end of its base64), OpenAI/Anthropic-style `sk-…` keys (20+ characters with letters and
 *    digits), Stripe `sk_live_`/`rk_test_`…, AWS access key ids (`AKIA`/`ASIA`/`ABIA`/`ACCA` + 16),
 *    an AWS secret key after `aws_secret_access_key =`, GitHub tokens (`ghp_`, `gho_`, `ghu_`,
 *    `ghs_`, `ghr_` + 36, `github_pat_`), Slack `xox?-` tokens and Google `AIza` API keys.
 *
 * Detection runs on the prompt as sent, then again on that result normalized (normalize.ts: NFKC,
 * invisible characters removed, dashes and digits of every script in ASCII), so `４１１１…`,
 * `4111\u200b1111…` or `123–45–6789` are found too, then on that result with look-alike letters
 * of other scripts folded to ASCII (normalize.ts, from Unicode's confusables), so `jоhn@exаmple.com`
 * with Cyrillic `о` and `а`, or an IBAN with a Greek `Β` among its letters, is found too. Folding
 * replaces one character with one, so an entity found in the folded view is replaced at the same
 * place in the unfolded text. When a later pass finds anything, the model gets the normalized text
 * with its letters as written and the entities replaced (a Russian or Greek prompt stays Russian or
 * Greek), otherwise the first pass's result. PEM headers and AWS key ids are found in any case.
 *
 * Entities are processed in a fixed order (secret_key, email, iban, credit_card, us_ssn,
 * ip_address, phone), so a value already replaced is not found again by a later detector.
 * Every pattern starts only at the beginning of a run (negative look-behind) and has no nested
 * repetition that can overlap, so matching stays about linear in the text length (measured on
 * 100,000-character adversarial runs: 2..20 ms each; 1 MB of repeated PEM BEGIN lines, which took
 * 1.2 s while each BEGIN searched 16 KiB of anything for its END, takes tens of ms since that search
 * stops at the first dash, which base64 never contains).
 *
 * An entity split across chat messages is found by piiAcrossMessages (the caller blocks it).
 *
 * What it does not do: names, postal addresses, dates of birth and free-form identifiers are not
 * detected; look-alikes of several characters (`rn` for `m`), accented letters and letters of
 * scripts outside normalize.ts's table are not mapped; detection is best-effort pattern
 * matching, not a guarantee that no PII reaches the model.
 * Findings hold entity types and counts only, never the values.
 */

import { type Manifest, PII_ENTITIES, type PiiEntity } from "../../manifests/schema.ts";
import { PiiEntityUnknownError } from "./errors.ts";
import { foldLookAlikes, normalizeCharacters, normalizeForDetection } from "./normalize.ts";

export type PiiConfig = Manifest["requestPolicy"]["pii"];

export interface PiiFinding {
  readonly entity: PiiEntity;
  readonly count: number;
}

export interface RedactionResult {
  readonly text: string;
  /** In detector order; only entities found at least once. */
  readonly findings: readonly PiiFinding[];
}

export type PiiOutcome =
  | { readonly action: "allow"; readonly text: string; readonly findings: readonly PiiFinding[] }
  | { readonly action: "block"; readonly findings: readonly PiiFinding[]; readonly reason: string };

/** The fixed processing order (see the module comment). */
export const PII_DETECTION_ORDER: readonly PiiEntity[] = [
  "secret_key",
  "email",
  "iban",
  "credit_card",
  "us_ssn",
  "ip_address",
  "phone",
];

export function piiPlaceholder(entity: PiiEntity): string {
  return `[REDACTED_${entity.toUpperCase()}]`;
}

interface Detector {
  readonly regex: RegExp;
  /** Extra check on the matched text; absent = the shape suffices. */
  readonly valid?: (match: string) => boolean;
  /**
   * When the whole match fails `valid`: the length of a prefix to check instead (e.g. a card number
   * followed by its 3-digit security code, which the optional last group took), or null. When the
   * prefix is valid, the whole match is replaced.
   */
  readonly fallback?: (match: string) => number | null;
}

const DETECTORS: Readonly<Record<PiiEntity, readonly Detector[]>> = {
  email: [
    {
      regex:
        /(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}(?![A-Za-z0-9-])/g,
    },
  ],
  phone: [
    { regex: /(?<![\w+])\+[1-9](?:[ .-]?\d){7,14}(?!\w)/g },
    {
      regex: /(?<![\w+(])(?:\+?1[ .-]?)?(?:\([2-9]\d{2}\) ?|[2-9]\d{2}[ .-])[2-9]\d{2}[ .-]\d{4}(?![\w-])/g,
    },
  ],
  credit_card: [
    {
      // Compact, 4-4-4-4(-3) or 4-6-4/4-6-5, groups separated by a space, dot or dash (mixed too);
      // not inside a longer digit run or dashed number ("1234-4111-…"), but after "ref-".
      regex:
        /(?<!\d)(?<!\d[.-])(?:\d{13,19}|\d{4}[ .-]\d{4}[ .-]\d{4}[ .-]\d{4}(?:[ .-]\d{3})?|\d{4}[ .-]\d{6}[ .-]\d{4,5})(?!\d)/g,
      valid: validCard,
      fallback: (match) => (/^\d{4}[ .-]\d{4}[ .-]\d{4}[ .-]\d{4}[ .-]\d{3}$/.test(match) ? 19 : null),
    },
  ],
  iban: [
    {
      regex: /(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?![A-Za-z0-9])/gi,
      valid: validIban,
    },
  ],
  us_ssn: [{ regex: /(?<!\d)(?<!\d[.-])\d{3}([-. ])\d{2}\1\d{4}(?!\d)(?![.-]\d)/g, valid: validSsn }],
  ip_address: [
    // IPv6 first: its embedded-IPv4 form (::ffff:192.0.2.1) must not lose its tail to the IPv4 detector.
    {
      regex: /(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.\d{1,3}\.\d{1,3}\.\d{1,3})?(?![\w:]|\.\d)/g,
      valid: validIpv6,
    },
    {
      regex:
        /(?<![\w.]|\b(?:v|ver|version|release|build) ?)(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w]|\.\d)/gi,
    },
  ],
  secret_key: [
    {
      regex:
        // Up to its END line through anything but another "-----" (base64 in any layout: indented,
        // quoted, JSON-escaped "\n", one line; `Proc-Type`/`DEK-Info` headers); or, cut off without
        // an END, the base64 after BEGIN on its line (space-separated chunks of 16+), its header
        // lines, one empty line and its base64 lines, each line ended by CR, LF or an escaped \n.
        // Each BEGIN looks ahead at most 16 KiB and stops at the next "-----", so repeated BEGIN
        // lines stay linear.
        /-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----(?:(?:[^-]|-(?!----)){0,16384}-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|(?: [A-Za-z0-9+/=]{16,200})*(?:(?:\r\n|\r|\n|\\r\\n|\\n)[A-Za-z-]{1,40}: [^\r\n\\]{0,100})*(?:(?:\r\n|\r|\n|\\r\\n|\\n)(?=\r|\n|\\r|\\n))?(?:(?:\r\n|\r|\n|\\r\\n|\\n)[ \t]*[A-Za-z0-9+/=]{1,8192}[ \t]*(?=\r|\n|\\|"|$))*)/gi,
    },
    {
      regex: /(?<![\w-])sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}/g,
      valid: (m) => /\d/.test(m.slice(3)) && /[A-Za-z]/.test(m.slice(3)),
    },
    { regex: /(?<![\w-])(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}/g },
    { regex: /(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])/gi },
    { regex: /(?<=aws_secret_access_key["']?\s{0,8}[:=]\s{0,8}["']?)[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])/gi },
    { regex: /(?<![A-Za-z0-9_])gh[pousr]_[A-Za-z0-9]{36,255}(?![A-Za-z0-9_])/g },
    { regex: /(?<![A-Za-z0-9_])github_pat_[A-Za-z0-9_]{22,255}/g },
    { regex: /(?<![\w-])xox[abeprs]-[A-Za-z0-9-]{10,}/g },
    { regex: /(?<![\w-])AIza[0-9A-Za-z_-]{35}(?![\w-])/g },
  ],
};

function checkEntities(entities: readonly string[]): void {
  for (const entity of entities) {
    if (!(PII_ENTITIES as readonly string[]).includes(entity)) throw new PiiEntityUnknownError(entity);
  }
}

/**
 * Replaces every detected entity of the given types with its placeholder. Detection also runs on
 * the normalized text (normalize.ts), so full-width digits, zero-width characters, look-alike
 * dashes or look-alike letters of other scripts do not hide an entity; when something is found
 * there, the result is the text normalized with its letters as written (normalizeCharacters) and
 * the entities replaced (what the model then sees), otherwise the text exactly as given.
 */
export function redactPii(text: string, entities: readonly PiiEntity[]): RedactionResult {
  checkEntities(entities);
  const wanted = new Set(entities);
  // As sent first: normalizing can also join a neighbouring character to an entity (a superscript
  // or circled digit becomes a digit) and hide it. Placeholders are ASCII and survive normalizing.
  const asSent = redactIn(text, text, wanted);
  // Then normalized with the letters as written, then with look-alike letters folded (which can
  // join a letter to an entity in the same way). Folding keeps every position, so an entity found
  // in the folded view is replaced at the same place in the unfolded text: a Russian or Greek
  // prompt keeps its letters. Most prompts (plain ASCII) are their own normalized and folded form.
  const form = normalizeCharacters(asSent.text);
  const normalized = form === asSent.text ? { text: form, findings: [] } : redactIn(form, form, wanted);
  const view = foldLookAlikes(normalized.text);
  const folded = view === normalized.text ? normalized : redactIn(normalized.text, view, wanted);
  if (normalized.findings.length === 0 && folded.findings.length === 0) return asSent;
  const counts = new Map<PiiEntity, number>();
  const passes = folded === normalized ? [asSent, normalized] : [asSent, normalized, folded];
  for (const f of passes.flatMap((pass) => pass.findings)) counts.set(f.entity, (counts.get(f.entity) ?? 0) + f.count);
  return {
    text: folded.text,
    findings: PII_DETECTION_ORDER.flatMap((entity) => {
      const count = counts.get(entity);
      return count === undefined ? [] : [{ entity, count }];
    }),
  };
}

/**
 * Replaces the entities the detectors find in `view` (the text itself, or its folded form, of the
 * same length: foldLookAlikes) at the same positions in `text`.
 */
function redactIn(text: string, view: string, wanted: ReadonlySet<PiiEntity>): RedactionResult {
  const findings: PiiFinding[] = [];
  const sameView = view === text;
  let out = text;
  let seen = view;
  for (const entity of PII_DETECTION_ORDER) {
    if (!wanted.has(entity)) continue;
    let count = 0;
    const placeholder = piiPlaceholder(entity);
    for (const detector of DETECTORS[entity]) {
      let nextOut = "";
      let copied = 0;
      seen = seen.replace(detector.regex, (match: string, ...rest: unknown[]) => {
        // The whole match goes (a card's code included, when its shorter form is the card).
        if (!detectorAccepts(detector, match)) return match;
        count += 1;
        if (!sameView) {
          // The match's offset: the first number after the capture groups (strings or undefined).
          const offset = rest.find((arg) => typeof arg === "number") as number;
          nextOut += out.slice(copied, offset) + placeholder;
          copied = offset + match.length;
        }
        return placeholder;
      });
      if (sameView) out = seen;
      else if (copied > 0) out = nextOut + out.slice(copied);
    }
    if (count > 0) findings.push({ entity, count });
  }
  return { text: out, findings };
}

/** Counts the entities without changing the text (block mode). */
export function detectPii(text: string, entities: readonly PiiEntity[]): readonly PiiFinding[] {
  return redactPii(text, entities).findings;
}

/**
 * Applies the manifest's PII setting: "redact" → the redacted text; "block" → a block decision
 * naming the entity types found (or the text unchanged when none is found); "off" → untouched.
 */
export function applyPiiPolicy(pii: PiiConfig, text: string): PiiOutcome {
  if (pii.mode === "off") return { action: "allow", text, findings: [] };
  const result = redactPii(text, pii.entities);
  if (pii.mode === "redact") return { action: "allow", text: result.text, findings: result.findings };
  if (result.findings.length === 0) return { action: "allow", text, findings: [] };
  const types = result.findings.map((f) => f.entity).join(", ");
  return { action: "block", findings: result.findings, reason: `PII found (mode "block"): ${types}` };
}

/** Entities made of digits, which a client can split over messages without changing them. */
const SPLITTABLE: readonly PiiEntity[] = ["credit_card", "us_ssn", "iban"];

/**
 * Entities of a chat that no single message holds: a card number, SSN or IBAN (entities with a
 * checksum or strict shape, so joined neighbours rarely look like one) whose digits run on from
 * one message into the next, with at least one digit on each side. The messages are looked at
 * normalized (normalize.ts) and without the white space at their ends, joined as typed on, with a
 * space or with a dash. It reaches the model whole; the caller blocks such a request (the pieces
 * cannot be told from their neighbours to be redacted). Pass the messages after redaction, so an
 * entity inside one message is not counted again with its neighbour. Not checked: phone numbers
 * (too many false positives: "… 212" then "555 1234 …"), addresses and keys (joined words and
 * code, `assistant` + `@app.get(`, look like addresses).
 */
export function piiAcrossMessages(pii: PiiConfig, contents: readonly string[]): readonly PiiFinding[] {
  const wanted = SPLITTABLE.filter((e) => pii.entities.includes(e));
  if (pii.mode === "off" || contents.length < 2 || wanted.length === 0) return [];
  const counts = new Map<PiiEntity, number>();
  // Only the text around each boundary: no entity checked here is longer than SPLIT_WINDOW
  // characters, so one that crosses the boundary lies within that many on each side (taken from
  // twice as many raw characters, as normalizing removes invisible ones).
  for (let i = 0; i + 1 < contents.length; i++) {
    const left = normalizeForDetection((contents[i] as string).slice(-2 * SPLIT_WINDOW))
      .trim()
      .slice(-SPLIT_WINDOW);
    const right = normalizeForDetection((contents[i + 1] as string).slice(0, 2 * SPLIT_WINDOW))
      .trim()
      .slice(0, SPLIT_WINDOW);
    for (const entity of wanted) {
      if (SPLIT_SEPARATORS.some((separator) => crossesBoundary(entity, left, separator, right))) {
        counts.set(entity, (counts.get(entity) ?? 0) + 1);
      }
    }
  }
  return wanted.flatMap((entity) => {
    const count = counts.get(entity);
    return count === undefined ? [] : [{ entity, count }];
  });
}

/** Longer than any card number, SSN or IBAN as written (34 characters and up to 8 spaces). */
const SPLIT_WINDOW = 48;
/** Joined as typed on, or with the space or dash the split took away. */
const SPLIT_SEPARATORS = ["", " ", "-"] as const;

/** An `entity` in `left + separator + right` with at least one digit on each side of the join. */
function crossesBoundary(entity: PiiEntity, left: string, separator: string, right: string): boolean {
  const text = left + separator + right;
  const boundary = left.length + separator.length;
  for (const detector of DETECTORS[entity]) {
    for (const match of text.matchAll(detector.regex)) {
      const start = match.index;
      const end = start + match[0].length;
      if (start >= boundary || end <= boundary) continue;
      if (!/\d/.test(text.slice(start, boundary)) || !/\d/.test(text.slice(boundary, end))) continue;
      if (detectorAccepts(detector, match[0])) return true;
    }
  }
  return false;
}

function detectorAccepts(detector: Detector, match: string): boolean {
  if (detector.valid === undefined || detector.valid(match)) return true;
  const shorter = detector.fallback?.(match) ?? null;
  return shorter !== null && detector.valid(match.slice(0, shorter));
}

// --- checksums and range checks -------------------------------------------------------------------

export function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i -= 1) {
    let d = digits.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return false;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return digits.length > 0 && sum % 10 === 0;
}

function validCard(match: string): boolean {
  const digits = match.replace(/[ .-]/g, "");
  if (digits.length < 13 || digits.length > 19) return false;
  const two = Number(digits.slice(0, 2));
  const four = Number(digits.slice(0, 4));
  const networkPrefix =
    digits[0] === "4" ||
    (two >= 51 && two <= 55) ||
    (four >= 2221 && four <= 2720) ||
    two === 34 ||
    two === 37 ||
    two === 36 ||
    two === 38 ||
    (two === 30 && Number(digits[2]) <= 5) ||
    (four >= 3528 && four <= 3589) ||
    digits[0] === "6" ||
    two === 50 ||
    (two >= 56 && two <= 58);
  return networkPrefix && luhnValid(digits);
}

/** ISO 13616 / ISO 7064 mod 97-10 over the compact IBAN. */
export function ibanValid(compact: string): boolean {
  if (!/^[A-Z]{2}\d{2}[A-Z0-9]{11,30}$/.test(compact)) return false;
  const rearranged = compact.slice(4) + compact.slice(0, 4);
  let remainder = 0;
  for (const ch of rearranged) {
    const code = ch.charCodeAt(0);
    const value = code >= 65 ? String(code - 55) : ch;
    for (const digit of value) remainder = (remainder * 10 + (digit.charCodeAt(0) - 48)) % 97;
  }
  return remainder === 1;
}

function validIban(match: string): boolean {
  return ibanValid(match.replace(/ /g, "").toUpperCase());
}

function validSsn(match: string): boolean {
  const area = Number(match.slice(0, 3));
  const group = match.slice(4, 6);
  const serial = match.slice(7, 11);
  return area !== 0 && area !== 666 && area < 900 && group !== "00" && serial !== "0000";
}

/** RFC 4291 section 2.2 text forms: eight groups, or fewer with exactly one `::`; IPv4 tail allowed. */
export function ipv6Valid(text: string): boolean {
  let body = text;
  let groupsNeeded = 8;
  const v4 = /(?:^|:)(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})$/.exec(body);
  if (v4 !== null) {
    const quad = v4[1] as string;
    if (!quad.split(".").every((o) => /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/.test(o))) return false;
    body = body.slice(0, body.length - quad.length);
    // "::ffff:" → "::ffff"; a bare "::" before the IPv4 part stays.
    if (body.endsWith(":") && !body.endsWith("::")) body = body.slice(0, -1);
    groupsNeeded = 6;
  } else if (text.includes(".")) {
    return false;
  }
  const halves = body.split("::");
  if (halves.length > 2) return false;
  const parse = (part: string): string[] | null => {
    if (part === "") return [];
    const groups = part.split(":");
    return groups.every((g) => /^[0-9A-Fa-f]{1,4}$/.test(g)) ? groups : null;
  };
  if (halves.length === 1) {
    const groups = parse(halves[0] as string);
    return groups !== null && groups.length === groupsNeeded;
  }
  const head = parse(halves[0] as string);
  const tail = parse(halves[1] as string);
  if (head === null || tail === null) return false;
  return head.length + tail.length < groupsNeeded;
}

function validIpv6(match: string): boolean {
  // A bare "::" (e.g. a C++ scope operator) is not worth a placeholder.
  return /[0-9A-Fa-f]/.test(match) && ipv6Valid(match);
}
