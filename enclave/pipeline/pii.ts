/**
 * PII filtering (DESIGN.md "The zero-trust pipeline", step 3): finds the manifest's entity types in
 * a prompt and, per `requestPolicy.pii.mode`, replaces each with a typed placeholder
 * (`[REDACTED_EMAIL]`), blocks the request naming only the entity types, or leaves it untouched.
 *
 * Detectors (each a regular expression for the shape plus, where one exists, a checksum):
 *  - email: local@domain.tld (dot-separated labels, alphabetic TLD of 2..63), in the scripts that put
 *    spaces between words (`иван@пример.рф`, `김철수@예시.한국`) and in those that do not
 *    (`张伟@例子.中国`, `张.伟@example.com`, Japanese, Thai), where the letters before the `@` are
 *    taken with it, up to 64 characters back to a space or punctuation; a top-level domain in those
 *    letters is one of the root zone's (`wei@example.中国`), and the sentence after it stays, or,
 *    where none fits, the run of those letters after a dot (`wei@example.未知`; see emailRegex).
 *  - phone: international `+<country><digits>` with 8..15 digits in all (E.164) and single
 *    space/dot/dash separators; North-American (NANP) `(NXX) NXX-XXXX`, `NXX-NXX-XXXX`,
 *    `NXX.NXX.XXXX`, `NXX NXX XXXX`, optional `+1`/`1` prefix, area and exchange starting 2..9.
 *    Bare digit runs without separators are not phones (too many false positives).
 *  - credit_card: 13..19 digits, compact or grouped 4-4-4-4(-3) / 4-6-4(5) separated by dots,
 *    dashes, one or two spaces or tabs, or line breaks, also behind an e-mail quote prefix (`> `,
 *    `>> `, `> > `; see WRAP) (mixed too; a 4-4-4-4 number followed by a 3-digit code is replaced
 *    with it), starting with a card network prefix (2-series Mastercard, 3 Amex/Diners/JCB, 4 Visa,
 *    5 Mastercard/Maestro, 6 Discover/UnionPay/Maestro), Luhn checksum valid.
 *  - iban: 2 letters, 2 check digits, 11..30 alphanumerics (compact, or in groups of 4 separated by
 *    one or two spaces or tabs, or line breaks as for cards), 15..34 characters in all, ISO 13616
 *    mod-97 = 1, in either case; when the groups run on into a short word after the IBAN, its
 *    longest valid prefix.
 *  - us_ssn: AAA-GG-SSSS (dashes, dots or spaces, one kind), or dashed and wrapped once after a
 *    dash (`123-45-\n6789`, also behind a quote prefix); excluding area 000, 666 and 900..999,
 *    group 00 and serial 0000.
 *  - ip_address: dotted-quad IPv4 (0..255, no leading zeros, not part of a longer dotted run, not
 *    after `v`/`version`/`release`/`build`); IPv6 in RFC 4291 text forms (at most one `::`,
 *    embedded IPv4 tail allowed) — a `h:h:h` time or a MAC address is not an IPv6 address.
 *  - secret_key: PEM and OpenPGP (armoured) private key blocks (with their header lines; a block
 *    cut off without its END line is redacted to the end of its base64), OpenAI/Anthropic-style
 *    `sk-…` keys (20+ characters with letters and digits), Stripe `sk_live_`/`rk_test_`…, AWS
 *    access key ids (`AKIA`/`ASIA`/`ABIA`/`ACCA` + 16), an AWS secret key after
 *    `aws_secret_access_key =`, GitHub tokens (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` + 36,
 *    `github_pat_`), Slack `xox?-` tokens and Google `AIza` API keys.
 *
 * Detection looks at the prompt as sent, normalized (normalize.ts: NFKC, invisible characters
 * removed, dashes and digits of every script in ASCII), so `４１１１…`, `4111\u200b1111…` or
 * `123–45–6789` are found too, and each of those with look-alike letters of other scripts folded to
 * ASCII (normalize.ts, from Unicode's confusables), so `jоhn@exаmple.com` with Cyrillic `о` and
 * `а`, or an IBAN with a Greek `Β` among its letters, is found too. Every view is searched before
 * anything is replaced, and the union of what they find is replaced once (redactPii): a view that
 * sees only a fragment of an entity (`ivanо` + `v.petr@example.com`) does not hide it from the view
 * that sees all of it. Matches that overlap, of one detector or several, become one placeholder
 * (the entity of the longest match, counted once). Folding replaces one character with one, so an
 * entity found in the folded view is replaced at the same place in the unfolded text. When the
 * normalized views find anything, the model gets the normalized text with its letters as written
 * and the entities replaced (a Russian or Greek prompt stays Russian or Greek), otherwise the text
 * as given with the entities of the text as sent replaced. PEM headers and AWS key ids are found in
 * any case.
 *
 * PII_DETECTION_ORDER (secret_key, email, iban, credit_card, us_ssn, ip_address, phone) orders the
 * findings and breaks ties between overlapping matches of equal length.
 *
 * A match that its check refuses (a checksum, an address form) is no entity, but one can start
 * inside it (`AB12 DE89 3704 …` read as an IBAN from `AB12`), so the search goes on from its next
 * character. Every pattern starts only at the beginning of a run (negative look-behind) or, for
 * e-mail, at its `@` (the local part read back from there, see emailRegex), has no
 * nested repetition that can overlap and, where a check can refuse it, a bounded length, so
 * matching stays about linear in the text length (measured with every entity on 1 MB adversarial
 * prompts on this project's 2-core test machine: 0.57 s for `AA00 ` repeated behind a zero-width
 * space, the worst shape found, 0.22 s before the search went on inside refused matches; 0.03..0.23 s
 * for other repeated shapes; groups behind the widest separators (`AA00\n> > > > ` behind a
 * zero-width space, `1234\t`, `AB12  `), timed beside `AA00 ` under the same load, take at most
 * two thirds of its time, and twice as long for twice the text; 1 MB of repeated PEM BEGIN lines,
 * which took 1.2 s while each BEGIN searched 16 KiB of anything for its END, takes tens of ms since
 * that search stops at the first dash, which base64 never contains).
 *
 * An entity split across chat messages is found by piiAcrossMessages (the caller blocks it).
 *
 * What it does not do: names, postal addresses, dates of birth and free-form identifiers are not
 * detected; look-alikes of several characters (`rn` for `m`), accented letters and letters of
 * scripts outside normalize.ts's table are not mapped; a combining mark over a letter other than
 * Latin and look-alike ones (NFKC keeps it) cuts an entity, and only the part after it is found
 * (over Latin ones the prompt is also read without the marks, those NFKC would compose with the
 * letter too: `jo\u0336hn@example.com` and `jo\u0301hn@example.com` are redacted whole);
 * detection is best-effort pattern matching, not a guarantee that no PII reaches the model. When
 * both the text as sent and its normalized form hold entities, a placeholder for one found only as
 * sent can cover a character next to it that normalizing would join to it (a combining mark, a
 * Hangul jamo). Findings hold entity types and counts only, never the values.
 */

import { type Manifest, PII_ENTITIES, type PiiEntity } from "../../manifests/schema.ts";
import { PiiEntityUnknownError } from "./errors.ts";
import { foldLookAlikes, normalizeCharacters, normalizeForDetection, withoutMarksOnLatin } from "./normalize.ts";

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
  /**
   * How much of the matched text, from its start, is the entity: all of it (its length), a part, or
   * null when its check (a checksum, an address form) refuses it; absent = the shape suffices. A
   * card number followed by its 3-digit security code (which the optional last group took) goes
   * whole, code included; an IBAN whose pattern ran on into the words after it (`… 3201 from me`)
   * goes as far as its longest valid prefix.
   */
  readonly accept?: (match: string) => number | null;
  /**
   * Matched from a character inside the entity, with the part before it taken by a look-behind
   * (an e-mail address from its `@`): that part is capture group 1. It starts no earlier than the
   * previous match of the same detector ends, so two entities stay two.
   */
  readonly before?: true;
  /**
   * Reads the ideographic full stops (`。`, `｡`) as written in the look-alike-folded view too,
   * where the other detectors read them as dots (`192。168。1。10`): the pattern tells them from
   * dots itself (an e-mail domain: `john@example.com。Thanks`).
   */
  readonly stopsAsWritten?: true;
}

/**
 * A line break between two groups of a card number or IBAN, or after a dash of an SSN, where text
 * was wrapped: LF or CRLF, with up to 2 spaces or tabs before it (a wrapped line keeps its space:
 * format=flowed), then the quote prefix of a quoted e-mail, up to 4 levels (`> `, `>> `, `> > `,
 * `>>>> `), and up to 4 spaces or tabs (an indented next line). Each level ends with its `>`, so
 * the prefix is read one way only. At most 2 + 2 + 8 + 4 = 16 characters (WRAP_MAX, for
 * piiAcrossMessages' window).
 */
const WRAP = String.raw`[ \t]{0,2}\r?\n(?:[ \t]?>){0,4}[ \t]{0,4}`;
const WRAP_MAX = 16;

/**
 * One or two spaces or tabs between two groups of a card number or IBAN: typed with a space,
 * pasted from a table (a tab) or aligned by hand (two spaces). No more: columns of numbers
 * aligned with runs of spaces are not one number.
 */
const SPACE = String.raw`[ \t]{1,2}`;

/**
 * The top-level domains of the root zone in the letters of the scripts without spaces between
 * words (IANA's list, https://data.iana.org/TLD/tlds-alpha-by-domain.txt, as of 2025, A-labels
 * decoded; with some since withdrawn, as addresses at them are still written): Han, kana, Thai and
 * Lao. A TLD delegated later is still found after a dot between two of those letters (emailRegex),
 * not after a Latin label.
 */
const UNSPACED_TLDS: readonly string[] = `
  一号店 世界 中信 中国 中國 中文网 亚马逊 企业 佛山 信息 健康 八卦 公司 公益 台湾 台灣 商城 商店 商标 嘉里 嘉里大酒店 在线 大众汽车 大拿 天主教 娱乐 家電
  工行 广东 微博 慈善 我爱你 手机 手表 招聘 政务 政府 新加坡 新闻 时尚 書籍 机构 淡马锡 游戏 澳門 点看 移动 组织机构 网址 网店 网站 网络 联通 诺基亚 谷歌
  购物 通販 集团 電訊盈科 飞利浦 食品 餐厅 香格里拉 香港
  みんな アマゾン クラウド グーグル コム ストア セール ファッション ポイント คอม ไทย ລາວ
`
  .trim()
  .split(/\s+/);

/**
 * The top-level domains of the root zone in Hangul (same list): Korean puts spaces between words
 * but writes particles on to them (`한국입니다`, `한국에`), so one of these ends the domain where it
 * fits; a Hangul top-level domain the list does not hold runs to the end of its letters.
 */
const HANGUL_TLDS: readonly string[] = ["한국", "삼성", "닷컴", "닷넷"];

const DETECTORS: Readonly<Record<PiiEntity, readonly Detector[]>> = {
  email: [
    {
      // The local part as RFC 5322 allows it (atext: `o'connor`, `a&b`, `x/y`) with letters of the
      // scripts that put spaces between words (RFC 6531: `josé.garcía`, `иван`), matched from its
      // first character: started after an apostrophe or an accented letter, the match left the rest
      // of the name in the prompt. No length bound, so a long run before the `@` is redacted with
      // the address, not the address missed; before it, up to 64 letters of the scripts without
      // spaces between words (`请联系张伟@…`: see emailRegex). Domain labels in the same letters
      // (`münchen.de`, `пример.рф`, `例子.中国`), the top-level domain in ASCII letters or in letters
      // of one of those scripts other than Latin (`рф`, `ελ`, `भारत`, `中国`).
      regex: emailRegex(),
      before: true,
      stopsAsWritten: true,
    },
  ],
  phone: [
    { regex: /(?<![\w+])\+[1-9](?:[ .-]?\d){7,14}(?!\w)/g },
    {
      // Not after a word character or `+`, but after a parenthesis that opens an aside (`(call
      // 415-555-2671)`, `((415) 555-2671)`).
      regex: /(?<![\w+])(?:\+?1[ .-]?)?(?:\([2-9]\d{2}\) ?|[2-9]\d{2}[ .-])[2-9]\d{2}[ .-]\d{4}(?![\w-])/g,
    },
  ],
  credit_card: [
    {
      // Compact, 4-4-4-4(-3) or 4-6-4/4-6-5, groups separated by a dot, dash, one or two spaces or
      // tabs (SPACE) or a line break (mixed too; WRAP: where text was wrapped); not inside a longer
      // digit run or dashed number ("1234-4111-…"), but after "ref-".
      regex: groupedRegex(
        String.raw`(?<!\d)(?<!\d[.-])(?:\d{13,19}|\d{4}§\d{4}§\d{4}§\d{4}(?:§\d{3})?|\d{4}§\d{6}§\d{4,5})(?!\d)`,
        `(?:[.-]|${SPACE}|${WRAP})`,
        "g",
      ),
      accept: (match) => {
        if (validCard(match)) return match.length;
        const code = /^(?:\d{4}\D+){3}\d{4}(\D+\d{3})$/.exec(match);
        return code !== null && validCard(match.slice(0, -(code[1] as string).length)) ? match.length : null;
      },
    },
  ],
  iban: [
    {
      // Compact or in groups of 4, separated by one or two spaces or tabs (SPACE) or a line break
      // (WRAP).
      regex: groupedRegex(
        String.raw`(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:§?[A-Z0-9]{4}){2,7}(?:§?[A-Z0-9]{1,4})?(?![A-Za-z0-9])`,
        `(?:${SPACE}|${WRAP})`,
        "gi",
      ),
      // The pattern takes any group of 4 letters or digits, so after an IBAN whose length is a
      // multiple of 4 (Austria's 20, Spain's 24, Poland's 28) it runs on into a following word of
      // 4 or fewer letters (`AT61 1904 3002 3457 3201 from me`).
      accept: (match) => validIbanEnds(match).at(-1) ?? null,
    },
  ],
  us_ssn: [
    {
      // AAA-GG-SSSS, AAA.GG.SSSS or AAA GG SSSS (one kind of separator), or dashed and wrapped
      // once (WRAP) after a dash, where a wrapper breaks a hyphenated word (`123-45-\n6789`). Not
      // wrapped twice, after a dot (`total 123.45.\n6789 units`), before a dash (no wrapper breaks
      // there) or in place of a space: tables put a year at the start of a row after one ending in
      // 3 and 2 digits (`2023 120 45\n2024 …`).
      regex: groupedRegex(
        String.raw`(?<!\d)(?<!\d[.-])\d{3}(?:([-. ])\d{2}\1|-§\d{2}-|-\d{2}-§)\d{4}(?!\d)(?![.-]\d)`,
        WRAP,
        "g",
      ),
      accept: whole(validSsn),
    },
  ],
  ip_address: [
    // IPv6 first: its embedded-IPv4 form (::ffff:192.0.2.1) must not lose its tail to the IPv4 detector.
    {
      // Not followed by a word character or by a colon that goes on (`:1`, `::`), and not ending in
      // a lone colon (an empty last group): a colon that ends a clause may follow
      // (`reach 2001:db8::1: it`, `2001:db8:0:0:0:0:0:1: it`).
      regex:
        /(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.\d{1,3}\.\d{1,3}\.\d{1,3})?(?<![^:]:)(?!\w|:[\w:]|\.\d)/g,
      accept: whole(validIpv6),
    },
    {
      regex:
        /(?<![\w.]|\b(?:v|ver|version|release|build) ?)(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w]|\.\d)/gi,
    },
  ],
  secret_key: [
    {
      regex:
        // PEM (`-----BEGIN RSA PRIVATE KEY-----`) or OpenPGP armour (`-----BEGIN PGP PRIVATE KEY
        // BLOCK-----`, RFC 9580 6.2). Up to its END line through anything but another "-----"
        // (base64 in any layout: indented, quoted, JSON-escaped "\n", one line;
        // `Proc-Type`/`DEK-Info` headers); or, cut off without an END, the base64 after BEGIN on
        // its line (space-separated chunks of 16+), its header lines, one empty line and its base64
        // lines (also commented out: `# `, `// `, `; `), each line ended by CR, LF or an escaped
        // \n.
        // Each BEGIN looks ahead at most 16 KiB and stops at the next "-----", so repeated BEGIN
        // lines stay linear.
        /-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?:(?:[^-]|-(?!----)){0,16384}-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|(?: [A-Za-z0-9+/=]{16,200})*(?:(?:\r\n|\r|\n|\\r\\n|\\n)[A-Za-z-]{1,40}: [^\r\n\\]{0,100})*(?:(?:\r\n|\r|\n|\\r\\n|\\n)(?=\r|\n|\\r|\\n))?(?:(?:\r\n|\r|\n|\\r\\n|\\n)[ \t]*(?:(?:#|\/\/|;)[ \t]*)?[A-Za-z0-9+/=]{1,8192}[ \t]*(?=\r|\n|\\|"|$))*)/gi,
    },
    {
      regex: /(?<![\w-])sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}/g,
      accept: whole((m) => /\d/.test(m.slice(3)) && /[A-Za-z]/.test(m.slice(3))),
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

/**
 * The e-mail pattern (a v-mode regular expression, for its class intersections), matched at the `@`
 * with the local part taken by a look-behind (group 1; `before` moves the match's start to it).
 *
 * Letters of the scripts that put spaces between words (Latin, Cyrillic, Greek, Armenian, Georgian,
 * Hebrew, Arabic, Devanagari and Hangul, with combining marks) and RFC 5322's atext: from the `@`
 * back to the first character of their run, without bound, so a long local part is redacted with
 * the address rather than missed.
 *
 * Chinese, Japanese, Thai, Lao, Khmer and Myanmar write no spaces between words, so an address in
 * their letters has no start we can see: it would run back into the sentence before it. For a
 * redaction filter the safe side is to take too much: before that run, the run of letters of every
 * script goes with the address up to 64 characters (RFC 5321's bound on a local part, in characters
 * so the pattern stays linear), back to a character that cannot be in an address (a space,
 * punctuation: `，` `。` `：` `（`). A dot between them is one of the name (`张.伟@…`), except
 * before a name that ends in letters of a spaced script: there the letters before it go back to a
 * dot, which ends a sentence (`我明天到北京.请发邮件到wei@…` keeps `我明天到北京.`). The pattern
 * reads `。` and `｡` as written in every view (`stopsAsWritten`), so the local part starts after
 * one (`你好。张伟@…`).
 *
 * Domain labels take those letters as well, but the end of a domain in them is as hard to see: a
 * dot may be a label's (`例子.中国`, or `例子。中国`, UTS #46) or a sentence's full stop, and nothing
 * ends the top-level domain before the sentence after it (`wei@例子.中国是我的邮箱`). So:
 *  - a top-level domain in those letters is one of the root zone's (UNSPACED_TLDS), the longest
 *    that fits, after a label in any script (`wei@example.中国`); the letters after it stay. So is
 *    one in Hangul when it is listed (HANGUL_TLDS: `김철수@example.한국입니다` keeps `입니다`);
 *  - the first dot or `。` before one of those letters (a `between`; a `。` only after a letter of a
 *    script other than Latin: `user@localhost。然后重启` is a sentence going on) is where the
 *    domain may end in those letters. After it, in turn: labels up to a later `between` and any
 *    top-level domain (`wei@例子.中国。我在北京。` ends at `中国`); any labels up to a top-level
 *    domain that ends its run of letters (`wei@北京.例子.中国`, `ครู@โรงเรียน.ศึกษา.ไทย`); or the run of
 *    those letters after it, up to 63 characters (a label's bound), as a top-level domain the
 *    list does not know (delegated since): `wei@例子.未知`, `wei@example.未知` and `wei@예시.未知`
 *    whole, `wei@例子.未知是我的邮箱` with the sentence (the safe side);
 *  - `。` after a dot is a sentence's full stop, not a label's (`john@example.com。Thanks` and
 *    `john@example.com。中国很大` keep what follows `com`): labels separated by `。` come first.
 * A label is 1..63 characters (RFC 1035's 63 octets, in characters so the bound holds in any
 * script).
 *
 * Linear: the `@` is matched first, and the look-behind from it reads back through the spaced run
 * before it, which ends at the `@` before (not in the run), then at most 64 characters more, each
 * length tried at most once as the run's start; the domain is read forward to the first character
 * that is not in a label, each label a bounded number of times (as `normal`, as `between`, and by
 * each of the three ways on after the first `between`), and a label can be read in one way only,
 * as it holds no dot. Measured in CPU time (the best of 3), in one process beside the pattern
 * before these rules, taking turns, with every entity: 1 MB of `张@例.`, of 65 `张` then `@`, of
 * `a@例.b.`, `a@例.中国`, `a@例.例.`, `a@例。例。` or `张.请wei@` repeated (`npm run bench:pii`)
 * takes 0.8 to 1.8 times as long, at most 0.38 s; `例.` repeated after one `@` 2.8 times (0.15 s);
 * half of each half as long.
 */
function emailRegex(): RegExp {
  // Scripts by their ISO 15924 codes (Cyrl: Cyrillic, Hang: Hangul, Hani: Han, Laoo: Lao, …), short
  // as the pattern repeats these classes (see labelEndingIn).
  const nonLatin = String.raw`\p{sc=Cyrl}\p{sc=Grek}\p{sc=Armn}\p{sc=Geor}\p{sc=Hebr}\p{sc=Arab}\p{sc=Deva}\p{sc=Hang}`;
  // Letters and digits of those scripts (not their punctuation: `۔`, `׃`), and combining marks.
  // Hebrew's geresh and gershayim are punctuation, but written inside names (`צ׳רלי`).
  const word = String.raw`[[\p{sc=Latn}${nonLatin}]&&[\p{L}\p{Nd}]]\p{M}0-9\u05F3\u05F4`;
  // Letters of the scripts without spaces between words; Script_Extensions for the marks written
  // with both kana (`ー`, `ゝ`), and not their punctuation (`。`, `・`).
  const unspaced = String.raw`[[\p{scx=Hani}\p{scx=Hira}\p{scx=Kana}\p{scx=Bopo}\p{sc=Thai}\p{sc=Laoo}\p{sc=Khmr}\p{sc=Mymr}]&&[\p{L}\p{Nd}]]`;
  const atext = String.raw`!#$%&'*+\/=?^_\`\{\|\}~\-`;
  // One character of a local part. A dot after one of `unspaced`'s letters too (`张.伟`); `。` is
  // none (this pattern reads it as written: `stopsAsWritten`), so the local part starts after it
  // (`你好。张伟@…`).
  const name = `[${word}${atext}${unspaced}.]`;
  const undotted = `[${word}${atext}${unspaced}]`;
  const spaced = `[${word}${atext}.]`;
  // Read backwards from the `@`: the run of spaced letters before it, then the rest of the run (to
  // its start, or 64 characters when it is longer), through dots only when no spaced letter ends
  // the name: before one (`…到wei@`) a dot ends a sentence (`我明天到北京.请发邮件到wei@…` keeps
  // `我明天到北京.`). Not empty (the `@` follows a `name`).
  const local = `(?:(?<!${undotted})${undotted}{0,64}|${undotted}{64})${spaced}+|(?:(?<!${name})${name}{0,64}|${name}{64})`;
  // A label then its dot (`\.`) or ideographic full stop (`。` `｡`, a dot in domain names: UTS #46).
  const letter = `[${word}${unspaced}]`;
  // 1..63 of them and hyphens, not starting or ending with a hyphen (one class, written once: the
  // pattern holds many labels, and V8 optimizes less a pattern over 20 KB).
  const labelEndingIn = (separator: string) => String.raw`(?!-)[${letter}\-]{1,63}(?<!-)${separator}`;
  const dot = String.raw`\.`;
  const stop = "[。｡]";
  const dotLabel = labelEndingIn(dot);
  const stopLabel = labelEndingIn(stop);
  // The dot or stop just read follows one of `unspaced`'s letters (`例子.`) or a whole label in
  // letters of another script but Latin (`예시.`, `пример.`; not a label that mixes in Latin, such as
  // the look-alike folded view's `pф.`, whose top-level domain then fits no rule).
  const afterNonLatin = (separator: string) =>
    String.raw`(?<=[${unspaced}]\p{M}{0,62}${separator}|[@.。｡][[[${nonLatin}]&&[\p{L}\p{Nd}]]\p{M}]{1,63}${separator})`;
  // An ASCII top-level domain ends where Latin letters end, so a word of another script may follow
  // it directly (`ivan@example.comили`); one in another script with spaces between words ends where
  // its letters end, unless it is one of the root zone's in Hangul (Korean writes particles on to
  // the word: `예시.한국입니다`). One in `unspaced`'s letters is one of the root zone's
  // (UNSPACED_TLDS). Listed ones first, the longest that fits, so the sentence that goes on after
  // it stays (`wei@例子.中国是…`); their first letters as a class first: one test where a letter
  // starts none of them (most).
  const listed = [...UNSPACED_TLDS, ...HANGUL_TLDS];
  const firsts = [...new Set(listed.map((t) => t[0]))].join("");
  const known = `(?=[${firsts}])(?:${listed.sort((a, b) => b.length - a.length).join("|")})`;
  const tld = [
    String.raw`${known}(?![\p{M}\-])`,
    String.raw`[A-Za-z]{2,63}(?![\p{sc=Latn}\p{M}0-9\-])`,
    String.raw`[[[${nonLatin}]&&\p{L}]\p{M}]{2,63}(?![${word}\-])`,
  ].join("|");
  const top = `(?<=[.。｡])(?:${tld})`;
  // A top-level domain that ends a run of letters of any script (`北京.例子.中国。`).
  const lastTop = String.raw`${top}(?![\p{L}\p{M}\p{Nd}\-])`;
  // A label `between` (before one of `unspaced`'s letters) or `normal`. Between after a dot: after
  // a label in any script, unless a listed top-level domain follows a Latin one (`example.中国`).
  // Between after `。`: only after `unspaced`'s letters or a label in another script but Latin:
  // after a Latin one it is a sentence going on (`user@localhost。然后`).
  const dotBetween = `(?=[${unspaced}])(?:${afterNonLatin(dot)}|(?!${known}))`;
  const stopBetween = `${afterNonLatin(stop)}(?=[${unspaced}])`;
  const normalDots = `(?:${dotLabel}(?!${dotBetween}))*`;
  const normalStops = `(?:${stopLabel}(?!${stopBetween}))*`;
  // The run of `unspaced`'s letters right after the first `between`, up to 63: a top-level domain
  // the list does not know, taken only where none fits (the safe side: `wei@例子.未知是…` goes with
  // `是…`).
  const run = String.raw`[${unspaced}][${unspaced}\p{M}]{1,62}`;
  // Stop-separated labels, then dot-separated ones: a `。` after a dot is a sentence's full stop
  // (`john@example.com。Thanks`). Up to the first `between`, then after it, tried in turn: labels
  // not `between` and any top-level domain (`例子.中国。我在北京`: the sentences after it stay);
  // any labels and one that ends the run of letters (`北京.例子.中国`); the `run`.
  // Each label is read a bounded number of times: as `normal`, as `between`, and after the first
  // `between` by each of the three ways on.
  const afterDotBetween = `(?:${normalDots}${top}|(?:${dotLabel})*${lastTop}|${run})`;
  const afterStopBetween = `(?:${normalStops}${normalDots}${top}|(?:${stopLabel})*(?:${dotLabel})*${lastTop}|${run})`;
  const domain = `${normalStops}(?:${normalDots}(?:${top}|${dotLabel}${dotBetween}${afterDotBetween})|${stopLabel}${stopBetween}${afterStopBetween})`;
  return new RegExp(`@(?<=${name}@)(?<=(${local})@)${domain}`, "gv");
}

/** An `accept` that takes the whole match when `check` does, and none of it otherwise. */
function whole(check: (match: string) => boolean): (match: string) => number | null {
  return (match) => (check(match) ? match.length : null);
}

/** `pattern` with each `§` replaced by `separator` (a group separator), compiled with `flags`. */
function groupedRegex(pattern: string, separator: string, flags: string): RegExp {
  return new RegExp(pattern.replaceAll("§", separator), flags);
}

function checkEntities(entities: readonly string[]): void {
  for (const entity of entities) {
    if (!(PII_ENTITIES as readonly string[]).includes(entity)) throw new PiiEntityUnknownError(entity);
  }
}

/**
 * Replaces every detected entity of the given types with its placeholder. Every view of the prompt
 * is searched before anything is replaced (a placeholder put in for a fragment that one view sees
 * would hide the whole entity from the view that sees all of it), and the union of what they find
 * is replaced once:
 *  1. the text as sent and its look-alike-folded form (foldLookAlikes: same length, same
 *     positions). Matches that overlap become one placeholder, of the entity of the longest match
 *     (a tie: the earlier in PII_DETECTION_ORDER), counted once. When normalizing changes nothing
 *     (plain ASCII prompts, most Russian or Greek ones), that is the result.
 *  2. the text normalized (normalizeCharacters) and that folded. Nothing found there: the result
 *     of 1 on the text as given. Something found: the model gets the normalized text, letters as
 *     written, with the entities of 1 and of 2 replaced. Normalizing can join a neighbour to an
 *     entity (a superscript or circled digit after a card number becomes a digit) and hide it from
 *     2, which is why 1 counts too; its matches are moved into the normalized text by
 *     normalizeWithSpans.
 */
export function redactPii(text: string, entities: readonly PiiEntity[]): RedactionResult {
  return redact(text, entities, MAX_ROUNDS);
}

function redact(text: string, entities: readonly PiiEntity[], maxRounds: number): RedactionResult {
  checkEntities(entities);
  const wanted = new Set(entities);
  // Again on the result while a round finds something, when the model gets the normalized text: a
  // removed invisible character can glue an entity to the one before it (`…1111\u200bGB82…`
  // normalizes to `…1111GB82…`, where the IBAN has no boundary), and the placeholder that replaces
  // the first gives the second its boundary back. A prompt that normalizes to itself (most) has
  // nothing glued that way: one round.
  const first = redactRound(text, wanted);
  let result: RedactionResult = { text: first.text, findings: first.findings };
  const glueable = result.findings.length > 0 && first.normalizes;
  for (let round = 1; glueable && round < maxRounds && result.findings.length > 0; round++) {
    const again = redactRound(result.text, wanted);
    if (again.findings.length === 0) break;
    const counts = new Map(result.findings.map((f) => [f.entity, f.count]));
    for (const f of again.findings) counts.set(f.entity, (counts.get(f.entity) ?? 0) + f.count);
    result = {
      text: again.text,
      findings: PII_DETECTION_ORDER.flatMap((entity) => {
        const count = counts.get(entity);
        return count === undefined ? [] : [{ entity, count }];
      }),
    };
  }
  return result;
}

/**
 * Rounds of redactRound redactPii makes at most (each one only while the last found something);
 * a chain of more entities glued by invisible characters than this keeps the rest.
 */
const MAX_ROUNDS = 4;

/**
 * One round of redactPii: every view searched, the union replaced once; `normalizes`: whether
 * normalizing changes `text` (only then can a further round find more).
 */
function redactRound(text: string, wanted: ReadonlySet<PiiEntity>): RedactionResult & { normalizes: boolean } {
  const asSent = mergeSpans(detectIn(text, wanted, true));
  const normalized = normalizeCharacters(text);
  if (normalized === text) return { ...replaceSpans(text, asSent), normalizes: false };
  const found = detectIn(normalized, wanted);
  if (found.length === 0) return { ...replaceSpans(text, asSent), normalizes: true };
  const moved = normalizeWithSpans(text, asSent);
  // moved.text is `normalized` (pii.test.ts checks the property it rests on); were it ever not, the
  // model gets moved.text, so that is where the second view's entities must be looked for.
  const inModel = moved.text === normalized ? found : detectIn(moved.text, wanted);
  return { ...replaceSpans(moved.text, mergeSpans([...moved.spans, ...inModel])), normalizes: true };
}

/** A detector's match: [start, end) in the text it was found in. */
interface Span {
  readonly start: number;
  readonly end: number;
  readonly entity: PiiEntity;
}

/**
 * Every match of the wanted entities' detectors in `text` and in its folded form, unreplaced; and,
 * when `text` has combining marks on Latin or look-alike letters (U+0336 in `jo\u0336hn@…`, U+0301
 * in `jo\u0301hn@…`; withoutMarksOnLatin), in `text` without them and, for the prompt as sent
 * (`asSent`), in that normalized piece by piece (normalizedByPiece: `s\u200bk-a\u0301…`, where the
 * invisible character cuts the key as sent and NFKC makes `á` once it is removed), each match moved
 * back to cover the marks it spans and those right after it, so the whole entity is replaced, its
 * marks with it.
 */
function detectIn(text: string, wanted: ReadonlySet<PiiEntity>, asSent = false): Span[] {
  const spans = detectInViews(text, wanted);
  const unmarked = withoutMarksOnLatin(text);
  if (unmarked === null) return spans;
  const views = asSent ? [unmarked, normalizedByPiece(unmarked.text, unmarked.from)] : [unmarked];
  for (const view of views) {
    const { from } = view;
    for (const span of detectInViews(view.text, wanted)) {
      // Up to the next character kept: the removed marks after the entity's last one go with it.
      const end = span.end < from.length ? (from[span.end] as number) : text.length;
      spans.push({ start: from[span.start] as number, end, entity: span.entity });
    }
  }
  return spans;
}

/** A character outside ASCII and the combining marks after it. */
const PIECE = /[^\0-\x7f]\p{M}*/uy;

/**
 * normalizeCharacters(`text`) taken apart at every ASCII character and every other character with
 * its marks, with the place in the prompt (`at`, by unit of `text`) of each unit's piece: a view to
 * detect in whose matches map back exactly, though it can differ from normalizing `text` whole
 * (Hangul jamo stay apart). Each piece is normalized once per call: linear in the text length.
 */
function normalizedByPiece(text: string, at: readonly number[]): { text: string; from: number[] } {
  let out = "";
  const from: number[] = [];
  const normalizedPieces = new Map<string, string>();
  let i = 0;
  while (i < text.length) {
    // A run of ASCII characters, then one of others; a run that normalizing leaves as it is (most
    // of a Chinese or Russian prompt) is copied whole.
    const ascii = text.charCodeAt(i) < 0x80;
    let j = i;
    while (j < text.length && text.charCodeAt(j) < 0x80 === ascii) j++;
    const run = text.slice(i, j);
    if (ascii || normalizeCharacters(run) === run) {
      out += run;
      for (let k = i; k < j; k++) from.push(at[k] as number);
      i = j;
      continue;
    }
    while (i < j) {
      PIECE.lastIndex = i;
      const piece = (PIECE.exec(text) as RegExpExecArray)[0];
      let normalized = normalizedPieces.get(piece);
      if (normalized === undefined) {
        normalized = normalizeCharacters(piece);
        normalizedPieces.set(piece, normalized);
      }
      out += normalized;
      for (let k = 0; k < normalized.length; k++) from.push(at[i] as number);
      i += piece.length;
    }
  }
  return { text: out, from };
}

/** Every match of the wanted entities' detectors in `text` and in its folded form, unreplaced. */
function detectInViews(text: string, wanted: ReadonlySet<PiiEntity>): Span[] {
  const folded = foldLookAlikes(text);
  let foldedWithStops: string | undefined;
  const spans: Span[] = [];
  for (const entity of PII_DETECTION_ORDER) {
    if (!wanted.has(entity)) continue;
    for (const detector of DETECTORS[entity]) {
      const other = detector.stopsAsWritten ? (foldedWithStops ??= withStops(folded, text)) : folded;
      for (const view of other === text ? [text] : [text, other]) {
        for (const { start, end } of acceptedMatches(detector, view)) spans.push({ start, end, entity });
      }
    }
  }
  return spans;
}

/** `folded` (foldLookAlikes of `text`, as long) with the ideographic full stops of `text` put back. */
function withStops(folded: string, text: string): string {
  let out = "";
  let copied = 0;
  for (const stop of text.matchAll(/[。｡]/g)) {
    out += folded.slice(copied, stop.index) + stop[0];
    copied = stop.index + 1;
  }
  return copied === 0 ? folded : out + folded.slice(copied);
}

/**
 * Overlapping spans as one, in text order: its entity that of the longest span in it, of equal
 * ones the earliest in PII_DETECTION_ORDER. Spans that only touch stay apart.
 */
function mergeSpans(spans: readonly Span[]): Span[] {
  const sorted = [...spans].sort((a, b) => a.start - b.start || b.end - a.end);
  const merged: Span[] = [];
  let start = 0;
  let end = -1;
  let best: Span | undefined;
  for (const span of sorted) {
    if (best !== undefined && span.start < end) {
      end = Math.max(end, span.end);
      if (outranks(span, best)) best = span;
      continue;
    }
    if (best !== undefined) merged.push({ start, end, entity: best.entity });
    ({ start, end } = span);
    best = span;
  }
  if (best !== undefined) merged.push({ start, end, entity: best.entity });
  return merged;
}

function outranks(a: Span, b: Span): boolean {
  const length = a.end - a.start - (b.end - b.start);
  return length > 0 || (length === 0 && PII_DETECTION_ORDER.indexOf(a.entity) < PII_DETECTION_ORDER.indexOf(b.entity));
}

/** `text` with each of the merged `spans` replaced by its placeholder, and the counts. */
function replaceSpans(text: string, spans: readonly Span[]): RedactionResult {
  if (spans.length === 0) return { text, findings: [] };
  const counts = new Map<PiiEntity, number>();
  let out = "";
  let copied = 0;
  for (const span of spans) {
    out += text.slice(copied, span.start) + piiPlaceholder(span.entity);
    copied = span.end;
    counts.set(span.entity, (counts.get(span.entity) ?? 0) + 1);
  }
  return {
    text: out + text.slice(copied),
    findings: PII_DETECTION_ORDER.flatMap((entity) => {
      const count = counts.get(entity);
      return count === undefined ? [] : [{ entity, count }];
    }),
  };
}

/**
 * Whether normalizeCharacters can be cut before `text[i]` without changing its result:
 *  - before any ASCII character (and at the ends): ASCII is NFKC-stable with combining class 0, no
 *    canonical composition ends with an ASCII character, and removing invisible characters and
 *    rewriting dashes and digits go code point by code point;
 *  - before any other code point that is not a mark, whose decomposition starts with no mark (so
 *    nothing is reordered across the cut) and that normalizes with the code points before it as
 *    they do apart: such a starter composes, if at all, only with the starter right before it in
 *    the normalized text (every character between two starters blocks their composition), which
 *    the last three code points make (Hangul: a syllable, or leading and vowel jamo).
 *    This keeps a Chinese or Japanese sentence after an entity out of the entity's piece.
 * Never inside a surrogate pair. Exported for its property test.
 */
export function cuttable(text: string, i: number): boolean {
  if (i === 0 || i === text.length || text.charCodeAt(i) < 0x80) return true;
  const unit = text.charCodeAt(i);
  if (unit >= 0xdc00 && unit <= 0xdfff) return false;
  const here = String.fromCodePoint(text.codePointAt(i) as number);
  if (MARK.test(here) || MARK.test(here.normalize("NFKD").slice(0, 2))) return false;
  // The three code points before it: a starter that is a composition's second element (only Hangul
  // vowel and trailing jamo, and U+16D67) can compose with what two or three code points made
  // (ᄀ + ᅡ is 가, and then + ᆨ is 각).
  let from = i;
  for (let n = 0; n < 3 && from > 0; n++) {
    const unit = text.charCodeAt(from - 1);
    from -= unit >= 0xdc00 && unit <= 0xdfff && from >= 2 ? 2 : 1;
  }
  const previous = text.slice(from, i);
  return normalizeCharacters(previous + here) === normalizeCharacters(previous) + normalizeCharacters(here);
}

/** A combining mark (the first code point of the string tested). */
const MARK = /^\p{M}/u;

/**
 * normalizeCharacters(text), built piece by piece, and the merged `spans` of `text` moved into it.
 * The text is cut only where a span needs it, at the nearest place at or before its start and at
 * or after its end where normalizing can be cut (`cuttable`: usually the span's own edges), and a
 * span covers its pieces: wider than the entity when a piece holds more (`4111…1111¹` ends in the
 * piece `1¹`, since `¹` becomes a digit that NFKC would otherwise join to it), which only redacts
 * more. Two spans in one piece become one. Each character is scanned at most once: linear in the
 * text length.
 */
function normalizeWithSpans(text: string, spans: readonly Span[]): { text: string; spans: Span[] } {
  const cut = (i: number): boolean => cuttable(text, i);
  const moved: Span[] = [];
  let out = "";
  let copied = 0; // `out` is text[0, copied) normalized; `copied` is a place to cut
  for (const span of spans) {
    let start: number;
    const last = moved.at(-1);
    if (last !== undefined && span.start < copied) {
      start = last.start; // in the piece the previous span ended with
    } else {
      let from = span.start;
      while (from > copied && !cut(from)) from -= 1;
      out += normalizeCharacters(text.slice(copied, from));
      copied = from;
      start = out.length;
    }
    if (span.end > copied) {
      let to = span.end;
      while (!cut(to)) to += 1;
      out += normalizeCharacters(text.slice(copied, to));
      copied = to;
    }
    moved.push({ start, end: out.length, entity: span.entity });
  }
  return { text: out + normalizeCharacters(text.slice(copied)), spans: moved };
}

/** Counts the entities without changing the text (block mode). */
export function detectPii(text: string, entities: readonly PiiEntity[]): readonly PiiFinding[] {
  // Whether there is PII at all is settled by the first round (later rounds run only after a find).
  return redact(text, entities, 1).findings;
}

/**
 * Applies the manifest's PII setting: "redact" → the redacted text; "block" → a block decision
 * naming the entity types found (or the text unchanged when none is found); "off" → untouched.
 */
export function applyPiiPolicy(pii: PiiConfig, text: string): PiiOutcome {
  if (pii.mode === "off") return { action: "allow", text, findings: [] };
  // Blocking needs no more than whether there is PII: one round settles it.
  const result = redact(text, pii.entities, pii.mode === "redact" ? MAX_ROUNDS : 1);
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

/**
 * Longer than any card number, SSN or IBAN as written: 34 characters and up to 8 separators, each
 * at most a WRAP (a line break behind a quote prefix) of WRAP_MAX characters.
 */
const SPLIT_WINDOW = 34 + 8 * WRAP_MAX;
/** Joined as typed on, or with the space or dash the split took away. */
const SPLIT_SEPARATORS = ["", " ", "-"] as const;

/** An `entity` in `left + separator + right` with at least one digit on each side of the join. */
function crossesBoundary(entity: PiiEntity, left: string, separator: string, right: string): boolean {
  const text = left + separator + right;
  const boundary = left.length + separator.length;
  for (const detector of DETECTORS[entity]) {
    for (const { start, end } of acceptedMatches(detector, text)) {
      if (start >= boundary || end <= boundary) continue;
      if (/\d/.test(text.slice(start, boundary)) && /\d/.test(text.slice(boundary, end))) return true;
    }
  }
  return false;
}

/**
 * The entities `detector` finds in `text`, in order: each match its `accept` takes, as far as it
 * takes it. A match it refuses is no entity, but one may start inside it: the
 * pattern took a neighbour for part of the entity (`AB12 DE89 3704 …` read as an IBAN from `AB12`,
 * `1234 5555 5555 5555 4444` as a card from `1234`), so the search goes on from the match's next
 * character rather than its end. Matches a check can refuse are bounded in length (some tens of
 * characters), or, for `sk-…` keys, start only at a run's first character, so no two overlap; this
 * stays linear in the text (see the module comment for measured costs).
 */
function* acceptedMatches(detector: Detector, text: string): Generator<{ start: number; end: number }> {
  // exec on the shared regular expression (matchAll would copy it per call); the caller uses each
  // result before asking for the next, and nothing else runs in between.
  const regex = detector.regex;
  regex.lastIndex = 0;
  let previousEnd = 0;
  for (let match = regex.exec(text); match !== null; match = regex.exec(text)) {
    const at = match.index;
    if (match[0] === "") {
      // A zero-length match, should a pattern ever allow one, is stepped over.
      regex.lastIndex = at + 1;
      continue;
    }
    const length = detector.accept === undefined ? match[0].length : detector.accept(match[0]);
    if (length === null) {
      regex.lastIndex = at + 1;
      continue;
    }
    const start = detector.before ? Math.max(at - (match[1] ?? "").length, previousEnd) : at;
    const end = at + length;
    yield { start, end };
    regex.lastIndex = end;
    previousEnd = end;
  }
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
  const digits = match.replace(/[ .\t\r\n>-]/g, "");
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
  return /^[A-Z]{2}\d{2}[A-Z0-9]{11,30}$/.test(compact) && validIbanEnds(compact).at(-1) === compact.length;
}

/** 10^6 mod 97: the first four characters of an IBAN are six digits once its letters are numbers. */
const IBAN_HEAD_SHIFT = 1_000_000 % 97;

/**
 * Where in `text` (an IBAN as the pattern matched it: letters and digits, with SPACE or WRAP
 * between groups, whose characters are none of them) a valid IBAN can end, in ascending order: before a separator or at
 * the end, 15..34 letters and digits in, mod 97-10 (ISO 7064) of the rest then the first four, with
 * letters as 10..35, equal to 1. One pass without copies: the remainder of the rest grows
 * character by character, and the first four are put after it at each place checked.
 */
function validIbanEnds(text: string): number[] {
  const ends: number[] = [];
  let count = 0;
  let head = 0;
  let rest = 0;
  const check = (end: number) => {
    if (count >= 15 && count <= 34 && (rest * IBAN_HEAD_SHIFT + head) % 97 === 1) ends.push(end);
  };
  let inGroup = false;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i) | 0x20; // ASCII letters in lower case; digits unchanged
    let value: number;
    if (code >= 0x30 && code <= 0x39) value = code - 0x30;
    else if (code >= 0x61 && code <= 0x7a) value = code - 0x61 + 10;
    else {
      // Checked where a group ends: once per separator, however many characters it has (` \r\n `).
      if (inGroup) check(i);
      inGroup = false;
      continue;
    }
    inGroup = true;
    if (count < 4) head = head * (value < 10 ? 10 : 100) + value;
    else rest = (rest * (value < 10 ? 10 : 100) + value) % 97;
    count++;
  }
  check(text.length);
  return ends;
}

function validSsn(match: string): boolean {
  const digits = match.replace(/\D/g, "");
  const area = Number(digits.slice(0, 3));
  const group = digits.slice(3, 5);
  const serial = digits.slice(5, 9);
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
