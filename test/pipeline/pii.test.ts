import { describe, expect, it } from "vitest";
import { normalizeCharacters } from "../../enclave/pipeline/normalize.ts";
import {
  applyPiiPolicy,
  cuttable,
  ibanValid,
  ipv6Valid,
  luhnValid,
  type PiiConfig,
  piiAcrossMessages,
  piiPlaceholder,
  redactPii,
} from "../../enclave/pipeline/pii.ts";
import { DEV_MANIFEST } from "../../manifests/dev.ts";
import { PII_ENTITIES, type PiiEntity } from "../../manifests/schema.ts";

const RUSSIAN = "Пожалуйста, кратко изложите приложенный квартальный отчёт и назовите три главных риска.";
const GREEK = "Παρακαλώ συνοψίστε την τριμηνιαία αναφορά και αναφέρετε τρεις κινδύνους για το επόμενο τρίμηνο.";

/** 100 Chinese letters without a space: more than an e-mail address's run back takes (64). */
const HAN_100 = "张".repeat(100);

type Row = readonly [name: string, entity: PiiEntity, input: string, expected: string];

// True positives: the exact redacted output. Each row runs with only its own entity enabled.
const POSITIVES: readonly Row[] = [
  ["email", "email", "write to jane.doe+tag@mail.example.co.uk today", "write to [REDACTED_EMAIL] today"],
  ["email at sentence end", "email", "Contact: a_b@example.org.", "Contact: [REDACTED_EMAIL]."],
  // The whole local part, as RFC 5322 and RFC 6531 allow it: nothing of the name left behind.
  ["email, apostrophe", "email", "mail o'connor@example.com", "mail [REDACTED_EMAIL]"],
  ["email, accented letters", "email", "an josé.garcía@example.es", "an [REDACTED_EMAIL]"],
  ["email, umlaut", "email", "hans.müller@firma.de", "[REDACTED_EMAIL]"],
  ["email, atext symbols", "email", "to a&b!c#d=e/f~g|h*i@example.com now", "to [REDACTED_EMAIL] now"],
  ["email, Latin domain", "email", "an info@münchen.de", "an [REDACTED_EMAIL]"],
  // RFC 6531 addresses in scripts that put spaces between words; the TLD in ASCII or in the script.
  ["email, Cyrillic", "email", "пишите иван@пример.рф сегодня", "пишите [REDACTED_EMAIL] сегодня"],
  ["email, Cyrillic domain", "email", "ivan.petrov@почта.рф", "[REDACTED_EMAIL]"],
  ["email, Greek", "email", "στο χρήστης@παράδειγμα.ελ.", "στο [REDACTED_EMAIL]."],
  ["email, Hebrew", "email", "שלום@דוגמה.ישראל", "[REDACTED_EMAIL]"],
  ["email, Devanagari (with vowel signs)", "email", "उपयोगकर्ता@उदाहरण.भारत", "[REDACTED_EMAIL]"],
  ["email, Arabic, before an Urdu full stop", "email", "مستخدم@مثال.مصر۔", "[REDACTED_EMAIL]۔"],
  ["email, Hebrew geresh in the name", "email", "צ׳רלי@example.com", "[REDACTED_EMAIL]"],
  // An ASCII top-level domain ends where Latin letters end.
  ["email before a Cyrillic word", "email", "на ivan@example.comили", "на [REDACTED_EMAIL]или"],
  ["email before Devanagari", "email", "john@example.comका", "[REDACTED_EMAIL]का"],
  ["email, long local part", "email", `${"x".repeat(80)}@example.com`, "[REDACTED_EMAIL]"],
  // Scripts written without spaces between words (Chinese, Japanese, Thai): the address has no
  // start, so the run of letters before the `@` goes with it, up to 64 characters (RFC 5321's bound
  // on a local part), back to a character that cannot be in an address (a space, punctuation).
  // Until 2026-12 this row kept `请联系张三` (the address's name) in the prompt.
  ["email, CJK around it", "email", "请联系张三john@example.com确认", "[REDACTED_EMAIL]确认"],
  ["email, Chinese local part", "email", "张伟@example.com", "[REDACTED_EMAIL]"],
  ["email, Chinese domain", "email", "wei@例子.中国", "[REDACTED_EMAIL]"],
  ["email, Latin then Chinese local part", "email", "wei张伟@example.com", "[REDACTED_EMAIL]"],
  ["email, Chinese then Latin local part", "email", "张伟wei@example.com", "[REDACTED_EMAIL]"],
  ["email, Chinese sentence run into it", "email", "请联系张伟@example.com", "[REDACTED_EMAIL]"],
  ["email, Chinese, all in Chinese", "email", "邮箱：张伟@例子.中国，谢谢", "邮箱:[REDACTED_EMAIL],谢谢"],
  ["email, Chinese, after a full stop", "email", "你好。张伟@example.com", "你好。[REDACTED_EMAIL]"],
  ["email, Chinese, after a full stop, Latin name", "email", "你好。wei@example.com", "你好。[REDACTED_EMAIL]"],
  ["email, Chinese, in brackets", "email", "（张伟@example.com）", "([REDACTED_EMAIL])"],
  ["email, Chinese, after an ideographic comma", "email", "王芳、张伟@example.com", "王芳、[REDACTED_EMAIL]"],
  ["email, Chinese, 64 back", "email", `${HAN_100}@example.com`, `${HAN_100.slice(64)}[REDACTED_EMAIL]`],
  ["email, Chinese, 64 back, Latin", "email", `${HAN_100}wei@example.com`, `${HAN_100.slice(64)}[REDACTED_EMAIL]`],
  ["email, Latin name, dot, Chinese name", "email", "wei.张伟@example.com", "[REDACTED_EMAIL]"],
  // A dot between Chinese letters as written (`.`, not `。`) is a dot of the local part; `。` as
  // written ends it (a full stop: IDNA reads it as a dot in domain names only).
  ["email, Chinese name, dot, Chinese name", "email", "张.伟@example.com", "[REDACTED_EMAIL]"],
  ["email, Chinese names with dots, in a sentence", "email", "请联系张.伟.王@example.com谢谢", "[REDACTED_EMAIL]谢谢"],
  ["email, Chinese name with a dot, after a full stop", "email", "你好。张.伟@example.com", "你好。[REDACTED_EMAIL]"],
  // A top-level domain in those letters is one of the root zone's (UNSPACED_TLDS) wherever it
  // stands, after a Latin label too; the sentence after it stays.
  ["email, Latin label, Chinese TLD", "email", "wei@example.中国", "[REDACTED_EMAIL]"],
  ["email, Latin label, Chinese TLD, more", "email", "写 wei@example.中国。谢谢", "写 [REDACTED_EMAIL]。谢谢"],
  ["email, Latin labels, Japanese TLD", "email", "wei@mail.example.みんな", "[REDACTED_EMAIL]"],
  ["email, Chinese TLD, Chinese sentence on", "email", "wei@例子.中国是我的邮箱", "[REDACTED_EMAIL]是我的邮箱"],
  ["email, Chinese TLD, comma", "email", "邮箱是wei@example.中国，谢谢", "[REDACTED_EMAIL],谢谢"],
  ["email, Japanese TLD, sentence on", "email", "たなか@れい.みんなです", "[REDACTED_EMAIL]です"],
  ["email, Thai TLD, sentence on", "email", "สมชาย@ตัวอย่าง.ไทยครับ", "[REDACTED_EMAIL]ครับ"],
  // `。` between letters of those scripts separates labels only once (before the top-level domain):
  // the sentences after the address stay.
  ["email, Chinese domain, sentences on", "email", "wei@例子.中国。我在北京。谢谢", "[REDACTED_EMAIL]。我在北京。谢谢"],
  ["email, Chinese domain in ideographic stops", "email", "wei@例子。中国。是我的邮箱", "[REDACTED_EMAIL]。是我的邮箱"],
  ["email, Chinese domain, Latin TLD after", "email", "wei@例子.中国.com是", "[REDACTED_EMAIL]是"],
  // A top-level domain in those letters the list does not hold runs on to the end of its letters,
  // at most 63 (a label's bound), and no further than the next `。`.
  ["email, unknown Chinese TLD", "email", "wei@例子.未知。谢谢", "[REDACTED_EMAIL]。谢谢"],
  // After a label in another script with spaces between words too (only not after a Latin one).
  ["email, unknown Chinese TLD after Hangul", "email", "wei@예시.未知 다음", "[REDACTED_EMAIL] 다음"],
  ["email, unknown Chinese TLD after Cyrillic", "email", "wei@пример.未知 да", "[REDACTED_EMAIL] да"],
  ["email, Cyrillic TLD, full stop, Chinese", "email", "Иван@пример.рф。谢谢", "[REDACTED_EMAIL]。谢谢"],
  ["email, unknown Chinese TLD, 63", "email", `wei@例子.${HAN_100}`, `[REDACTED_EMAIL]${HAN_100.slice(63)}`],
  ["email, hiragana", "email", "あて先 たなか@example.jp まで", "あて先 [REDACTED_EMAIL] まで"],
  ["email, katakana with a long vowel mark", "email", "メール：ターナー@れい.みんな", "メール:[REDACTED_EMAIL]"],
  ["email, Thai", "email", "ติดต่อ สมชาย@ตัวอย่าง.ไทย ครับ", "ติดต่อ [REDACTED_EMAIL] ครับ"],
  // Korean puts spaces between words: an address in Hangul has a start, as in Cyrillic.
  ["email, Korean", "email", "연락처 김철수@예시.한국 입니다", "연락처 [REDACTED_EMAIL] 입니다"],
  ["email, Korean local part", "email", "메일 김철수@example.com 로", "메일 [REDACTED_EMAIL] 로"],
  // A domain with more than one dot between those letters, ending in a listed top-level domain
  // (until 2026-12 the labels after the second dot stayed: `.中国`, `.ไทย`).
  ["email, three Chinese labels", "email", "wei@北京.例子.中国", "[REDACTED_EMAIL]"],
  ["email, three Chinese labels, sentence on", "email", "wei@北京.例子.中国。谢谢", "[REDACTED_EMAIL]。谢谢"],
  ["email, three Chinese labels in stops", "email", "wei@北京。例子。中国。谢谢", "[REDACTED_EMAIL]。谢谢"],
  ["email, three Thai labels", "email", "ครู@โรงเรียน.ศึกษา.ไทย", "[REDACTED_EMAIL]"],
  // That far only where no shorter address fits: the sentences after one stay.
  ["email, sentences on, TLD word", "email", "wei@例子.中国。在北京。中国大", "[REDACTED_EMAIL]。在北京。中国大"],
  // An unlisted top-level domain in those letters after a Latin label and a dot (the list ages).
  ["email, Latin label, unknown Chinese TLD", "email", "wei@example.未知", "[REDACTED_EMAIL]"],
  ["email, Latin label, unknown Chinese TLD, more", "email", "wei@example.未知。谢谢", "[REDACTED_EMAIL]。谢谢"],
  // After an address written with dots, `。` is the sentence's full stop, whatever word follows.
  ["email, full stop, listed TLD word", "email", "john@example.com。中国很大", "[REDACTED_EMAIL]。中国很大"],
  ["email, full stop, Latin word", "email", "john@example.com。Thanks", "[REDACTED_EMAIL]。Thanks"],
  ["email, Chinese TLD, full stop, TLD word", "email", "wei@例子.中国。中国很大", "[REDACTED_EMAIL]。中国很大"],
  // A Hangul top-level domain is one of the root zone's when one fits: a particle after it stays.
  ["email, Korean TLD, particle", "email", "김철수@example.한국입니다", "[REDACTED_EMAIL]입니다"],
  ["email, Korean domain, particle", "email", "김철수@예시.한국에 보내", "[REDACTED_EMAIL]에 보내"],
  // Before a name in Latin letters, the Chinese letters go with it back to a dot, not through it:
  // there the dot ends a sentence.
  ["email, sentence ended by a dot", "email", "我明天到北京.请发邮件到wei@a.cn", "我明天到北京.[REDACTED_EMAIL]"],
  // Ideographic full stops are dots in domain names (UTS #46); the model gets them as written.
  ["email, ideographic full stop", "email", "写信给 john@example。com。谢谢", "写信给 [REDACTED_EMAIL]。谢谢"],
  ["email, half-width ideographic stop", "email", "john@example｡com", "[REDACTED_EMAIL]"],
  ["ipv4, ideographic full stops", "ip_address", "server 192。168。1。10 down", "server [REDACTED_IP_ADDRESS] down"],
  ["phone +44 spaced", "phone", "call +44 20 7946 0958 now", "call [REDACTED_PHONE] now"],
  ["phone +49 dashed", "phone", "tel +49-30-1234567", "tel [REDACTED_PHONE]"],
  ["phone +1 compact", "phone", "(+14155552671)", "([REDACTED_PHONE])"],
  ["phone US parenthesised", "phone", "ring (415) 555-2671 please", "ring [REDACTED_PHONE] please"],
  ["phone US dashed", "phone", "415-555-2671", "[REDACTED_PHONE]"],
  ["phone US dotted with 1", "phone", "1.415.555.2671", "[REDACTED_PHONE]"],
  ["phone +1 (415)", "phone", "dial +1 (415) 555-2671.", "dial [REDACTED_PHONE]."],
  ["visa spaced", "credit_card", "card 4111 1111 1111 1111 exp 05/27", "card [REDACTED_CREDIT_CARD] exp 05/27"],
  ["visa dashed", "credit_card", "4111-1111-1111-1111", "[REDACTED_CREDIT_CARD]"],
  ["mastercard compact", "credit_card", "pan=5555555555554444;", "pan=[REDACTED_CREDIT_CARD];"],
  ["amex 4-6-5", "credit_card", "amex 3782 822463 10005", "amex [REDACTED_CREDIT_CARD]"],
  ["visa 13 digits", "credit_card", "old 4222222222222 card", "old [REDACTED_CREDIT_CARD] card"],
  ["mastercard 2-series", "credit_card", "2223000048400011", "[REDACTED_CREDIT_CARD]"],
  ["iban DE grouped", "iban", "IBAN DE89 3704 0044 0532 0130 00 AND more", "IBAN [REDACTED_IBAN] AND more"],
  ["iban GB compact", "iban", "to GB29NWBK60161331926819.", "to [REDACTED_IBAN]."],
  ["iban FR grouped", "iban", "FR14 2004 1010 0505 0001 3M02 606", "[REDACTED_IBAN]"],
  // An IBAN whose length is a multiple of 4 ends on a whole group: the pattern runs on into a short
  // word after it, and the IBAN is its longest valid prefix.
  ["iban AT before a 4-letter word", "iban", "pay AT61 1904 3002 3457 3201 from me", "pay [REDACTED_IBAN] from me"],
  ["iban ES before short words", "iban", "ES91 2100 0418 4502 0005 1332 with thanks", "[REDACTED_IBAN] with thanks"],
  ["iban PL before a 3-letter word", "iban", "PL61 1090 1014 0000 0712 1981 2874 for rent", "[REDACTED_IBAN] for rent"],
  // Text wrapped between groups.
  ["iban wrapped", "iban", "IBAN DE89 3704 0044\n0532 0130 00.", "IBAN [REDACTED_IBAN]."],
  ["iban wrapped, CRLF", "iban", "DE89 3704 0044 0532\r\n0130 00 ok", "[REDACTED_IBAN] ok"],
  ["card wrapped", "credit_card", "card 4111 1111 1111\n1111 thanks", "card [REDACTED_CREDIT_CARD] thanks"],
  ["card wrapped before its code, CRLF", "credit_card", "4111 1111 1111 1111\r\n123 cvv", "[REDACTED_CREDIT_CARD] cvv"],
  [
    "card wrapped, space before the break",
    "credit_card",
    "card 4111 1111 \n1111 1111 ok",
    "card [REDACTED_CREDIT_CARD] ok",
  ],
  ["card wrapped, next line indented", "credit_card", "4111 1111 1111\r\n  1111", "[REDACTED_CREDIT_CARD]"],
  ["iban wrapped, space and CRLF", "iban", "AT61 1904 3002 \r\n3457 3201 ok", "[REDACTED_IBAN] ok"],
  ["iban before a wrapped word", "iban", "AT61 1904 3002 3457 3201 \nfrom me", "[REDACTED_IBAN] \nfrom me"],
  // Wrapped in a quoted e-mail: the next line starts with the quote prefix (`> `, `>> `, `> > `).
  [
    "card wrapped behind a quote prefix",
    "credit_card",
    "> card 4111 1111\n> 1111 1111 please",
    "> card [REDACTED_CREDIT_CARD] please",
  ],
  [
    "card wrapped behind two quote levels",
    "credit_card",
    ">> 4111 1111 1111\r\n>> 1111 ok",
    ">> [REDACTED_CREDIT_CARD] ok",
  ],
  ["iban wrapped behind spaced quote levels", "iban", "> > DE89 3704 0044 \n> > 0532 0130 00.", "> > [REDACTED_IBAN]."],
  ["iban wrapped twice behind three quote levels", "iban", "GB29 NWBK\n>>> 6016 1331\n>>> 9268 19", "[REDACTED_IBAN]"],
  // Groups separated by a tab or two spaces (pasted from a table, aligned by hand).
  ["card, tabs", "credit_card", "card\t4111\t1111\t1111\t1111\tok", "card\t[REDACTED_CREDIT_CARD]\tok"],
  ["card, two spaces", "credit_card", "4111  1111  1111  1111 ok", "[REDACTED_CREDIT_CARD] ok"],
  ["amex, tab and two spaces", "credit_card", "3782\t822463  10005", "[REDACTED_CREDIT_CARD]"],
  ["iban, two spaces", "iban", "IBAN DE89  3704 0044  0532 0130 00 ok", "IBAN [REDACTED_IBAN] ok"],
  ["iban, tabs", "iban", "GB29\tNWBK\t6016\t1331\t9268\t19", "[REDACTED_IBAN]"],
  // A neighbour the pattern takes for the entity's first part: the search goes on inside the match.
  ["iban after a token of IBAN shape", "iban", "ref AB12 DE89 3704 0044 0532 0130 00", "ref AB12 [REDACTED_IBAN]"],
  ["iban wrapped after a token of IBAN shape", "iban", "AB12\nGB29 NWBK 6016 1331 9268 19", "AB12\n[REDACTED_IBAN]"],
  ["card after a 4-digit number", "credit_card", "1234 5555 5555 5555 4444.", "1234 [REDACTED_CREDIT_CARD]."],
  ["card after a year on the line before", "credit_card", "2024\n6011-1111-1111-1117", "2024\n[REDACTED_CREDIT_CARD]"],
  ["ipv6 before a colon", "ip_address", "reach 2001:db8::1: it is up", "reach [REDACTED_IP_ADDRESS]: it is up"],
  [
    "ipv6, all 8 groups, before a colon",
    "ip_address",
    "reach 2001:db8:0:0:0:0:0:1: it",
    "reach [REDACTED_IP_ADDRESS]: it",
  ],
  ["ipv6, IPv4 tail, before a colon", "ip_address", "from ::ffff:192.0.2.1: ok", "from [REDACTED_IP_ADDRESS]: ok"],
  ["phone in parentheses", "phone", "call (415-555-2671)", "call ([REDACTED_PHONE])"],
  ["phone in parentheses in an aside", "phone", "(or ((415) 555-2671))", "(or ([REDACTED_PHONE]))"],
  ["ssn dashed", "us_ssn", "SSN: 123-45-6789", "SSN: [REDACTED_US_SSN]"],
  ["ssn spaced", "us_ssn", "ssn 536 22 1234 on file", "ssn [REDACTED_US_SSN] on file"],
  ["ipv4", "ip_address", "host 192.168.1.10 is up", "host [REDACTED_IP_ADDRESS] is up"],
  ["ipv4 sentence end", "ip_address", "Connect to 10.0.0.1.", "Connect to [REDACTED_IP_ADDRESS]."],
  ["ipv4 edge values", "ip_address", "255.255.255.255 and 0.0.0.0", "[REDACTED_IP_ADDRESS] and [REDACTED_IP_ADDRESS]"],
  ["ipv6 full", "ip_address", "addr 2001:0db8:85a3:0000:0000:8a2e:0370:7334 ok", "addr [REDACTED_IP_ADDRESS] ok"],
  [
    "ipv6 compressed",
    "ip_address",
    "via 2001:db8::1 and fe80::1ff:fe23:4567:890a",
    "via [REDACTED_IP_ADDRESS] and [REDACTED_IP_ADDRESS]",
  ],
  ["ipv6 loopback", "ip_address", "bind ::1 here", "bind [REDACTED_IP_ADDRESS] here"],
  ["ipv6 mapped v4", "ip_address", "peer ::ffff:192.0.2.128 seen", "peer [REDACTED_IP_ADDRESS] seen"],
  [
    "PEM private key block",
    "secret_key",
    "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7+abc/def==\nQWERTY\n-----END RSA PRIVATE KEY-----\nthanks",
    "key:\n[REDACTED_SECRET_KEY]\nthanks",
  ],
  [
    "encrypted PEM block with its headers",
    "secret_key",
    "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,3F17F5316E2BAC89\n\nMIIEowIBAAKCAQEA7+abc/def==\n-----END RSA PRIVATE KEY-----\nbye",
    "[REDACTED_SECRET_KEY]\nbye",
  ],
  [
    "repeated BEGIN lines (once took seconds per megabyte)",
    "secret_key",
    "-----BEGIN PRIVATE KEY-----\n".repeat(20_000),
    "[REDACTED_SECRET_KEY]\n".repeat(20_000),
  ],
  [
    "PEM key in a JSON string (escaped line breaks)",
    "secret_key",
    '{"private_key":"-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBg\\n-----END PRIVATE KEY-----\\n","x":1}',
    '{"private_key":"[REDACTED_SECRET_KEY]\\n","x":1}',
  ],
  [
    "PEM key indented in YAML",
    "secret_key",
    "key: |\n  -----BEGIN PRIVATE KEY-----\n  MIIEvQIBADANBg\n  -----END PRIVATE KEY-----\nnext: 1",
    "key: |\n  [REDACTED_SECRET_KEY]\nnext: 1",
  ],
  [
    "PEM key on one line, a long line, a comment",
    "secret_key",
    `-----BEGIN PRIVATE KEY----- MIIEvQ ${"A".repeat(300)} -----END PRIVATE KEY----- and\n-----BEGIN PRIVATE KEY-----\n# note\nMIIE\n-----END PRIVATE KEY-----\nok`,
    "[REDACTED_SECRET_KEY] and\n[REDACTED_SECRET_KEY]\nok",
  ],
  [
    "encrypted PEM key in a JSON string",
    "secret_key",
    '{"k":"-----BEGIN RSA PRIVATE KEY-----\\nProc-Type: 4,ENCRYPTED\\nDEK-Info: AES-128-CBC,3F17\\n\\nMIIEowIBAAKCAQEA\\n-----END RSA PRIVATE KEY-----","x":1}',
    '{"k":"[REDACTED_SECRET_KEY]","x":1}',
  ],
  [
    "PEM key cut off: in a JSON string, on one line, with CR line ends",
    "secret_key",
    '{"k":"-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0B\\nAQEFAASCBKcwggSjAgEAAoIB","x":1} -----BEGIN PRIVATE KEY----- MIIEvQIBADANBgkqhkiG9w0B AQEFAASCBKcwggSjAgEAAoIB and prose\r-----BEGIN PRIVATE KEY-----\rMIIEvQIBADANBg\rAQEFAASCBKcw\r and more',
    '{"k":"[REDACTED_SECRET_KEY]","x":1} [REDACTED_SECRET_KEY] and prose\r[REDACTED_SECRET_KEY]\r and more',
  ],
  [
    "PEM block cut off before prose",
    "secret_key",
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n\nNote: is this truncated?\nThanks",
    "[REDACTED_SECRET_KEY]\n\nNote: is this truncated?\nThanks",
  ],
  [
    "PEM block cut off",
    "secret_key",
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nabc+/=\nand then prose",
    "[REDACTED_SECRET_KEY]\nand then prose",
  ],
  [
    "openai key",
    "secret_key",
    "OPENAI_API_KEY=sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t",
    "OPENAI_API_KEY=[REDACTED_SECRET_KEY]",
  ],
  ["anthropic key", "secret_key", "key sk-ant-api03-xY7zQ1wE2rT3yU4iO5pA6s end", "key [REDACTED_SECRET_KEY] end"],
  ["stripe live key", "secret_key", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "[REDACTED_SECRET_KEY]"],
  ["aws access key id", "secret_key", "AKIAIOSFODNN7EXAMPLE in config", "[REDACTED_SECRET_KEY] in config"],
  [
    "aws secret after its name",
    "secret_key",
    "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "aws_secret_access_key = [REDACTED_SECRET_KEY]",
  ],
  ["github pat", "secret_key", "token ghp_1234567890abcdefghijklmnopqrstuvwxyZ ok", "token [REDACTED_SECRET_KEY] ok"],
  ["github fine-grained", "secret_key", "github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "[REDACTED_SECRET_KEY]"],
  ["slack token", "secret_key", "xoxb-123456789012-abcdefABCDEF", "[REDACTED_SECRET_KEY]"],
  ["google api key", "secret_key", "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe", "[REDACTED_SECRET_KEY]"],
  // Rewrites of the same value (found on the normalized text; the output is normalized too).
  ["card, mixed separators", "credit_card", "4111-1111 1111-1111", "[REDACTED_CREDIT_CARD]"],
  ["card, dots", "credit_card", "4111.1111.1111.1111", "[REDACTED_CREDIT_CARD]"],
  ["card, full-width digits", "credit_card", "card ４１１１ １１１１ １１１１ １１１１", "card [REDACTED_CREDIT_CARD]"],
  ["card, Arabic-Indic digits", "credit_card", "٤١١١١١١١١١١١١١١١", "[REDACTED_CREDIT_CARD]"],
  ["card, zero-width spaces", "credit_card", "4111\u200b1111\u200b1111\u200b1111", "[REDACTED_CREDIT_CARD]"],
  ["card, no-break spaces", "credit_card", "4111\u00a01111\u00a01111\u00a01111", "[REDACTED_CREDIT_CARD]"],
  ["card after a reference prefix", "credit_card", "ref-4111111111111111", "ref-[REDACTED_CREDIT_CARD]"],
  ["card followed by its code", "credit_card", "4111 1111 1111 1111 123 cvv", "[REDACTED_CREDIT_CARD] cvv"],
  // Normalizing alone would join these neighbours to the digits; the pass over the text as sent finds them.
  ["card before a superscript", "credit_card", "card 4111111111111111¹", "card [REDACTED_CREDIT_CARD]¹"],
  ["card before zero-width and a digit", "credit_card", "4111111111111111\u200b5", "[REDACTED_CREDIT_CARD]\u200b5"],
  ["card after a circled digit", "credit_card", "n°①4111111111111111", "n°①[REDACTED_CREDIT_CARD]"],
  ["ssn before a superscript", "us_ssn", "ssn 123-45-6789²", "ssn [REDACTED_US_SSN]²"],
  ["email, full-width at", "email", "mail john.doe＠example.com", "mail [REDACTED_EMAIL]"],
  ["email, zero-width space", "email", "john.doe@exa\u200bmple.com", "[REDACTED_EMAIL]"],
  ["ipv4, full-width dots", "ip_address", "host 192．168．1．20", "host [REDACTED_IP_ADDRESS]"],
  ["ssn, en dashes", "us_ssn", "ssn 123–45–6789", "ssn [REDACTED_US_SSN]"],
  ["ssn, dots", "us_ssn", "123.45.6789", "[REDACTED_US_SSN]"],
  ["ssn after an id prefix", "us_ssn", "id-123-45-6789", "id-[REDACTED_US_SSN]"],
  ["ssn before a dash", "us_ssn", "123-45-6789-", "[REDACTED_US_SSN]-"],
  // Wrapped after a dash, where a wrapper breaks a hyphenated word.
  ["ssn wrapped after its second dash", "us_ssn", "ssn 123-45-\n6789 ok", "ssn [REDACTED_US_SSN] ok"],
  ["ssn wrapped after its first dash, CRLF", "us_ssn", "ssn 123-\r\n45-6789", "ssn [REDACTED_US_SSN]"],
  ["ssn wrapped behind a quote prefix", "us_ssn", "> ssn 123-45-\n> 6789", "> ssn [REDACTED_US_SSN]"],
  ["iban, lower case", "iban", "de89 3704 0044 0532 0130 00", "[REDACTED_IBAN]"],
  ["aws key id, lower case", "secret_key", "akiaiosfodnn7example", "[REDACTED_SECRET_KEY]"],
  [
    "private key cut off, commented out",
    "secret_key",
    "# -----BEGIN RSA PRIVATE KEY-----\n# MIIEowIBAAKCAQEAx3\n# ZzQ1+/==\n\nsee above",
    "# [REDACTED_SECRET_KEY]\n\nsee above",
  ],
  [
    "OpenPGP private key block",
    "secret_key",
    "key:\n-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBF0AAAABCADZ0d3Yx1b2\n=Ab12\n-----END PGP PRIVATE KEY BLOCK-----\nthanks",
    "key:\n[REDACTED_SECRET_KEY]\nthanks",
  ],
  ["aws key id, zero-width", "secret_key", "AKIA\u200bIOSFODNN7EXAMPLE", "[REDACTED_SECRET_KEY]"],
  // Look-alike letters of other scripts (normalize.ts folds them; the output keeps them as written).
  ["email, Cyrillic look-alikes", "email", "mail jоhn.dое@ехаmple.com", "mail [REDACTED_EMAIL]"],
  ["email, Greek look-alikes", "email", "mail jane@exαmple.οrg", "mail [REDACTED_EMAIL]"],
  ["iban, Cyrillic B in the bank code", "iban", "to GB29 NWВK 6016 1331 9268 19.", "to [REDACTED_IBAN]."],
  ["iban, Greek country code", "iban", "ΒΕ68 5390 0754 7034", "[REDACTED_IBAN]"],
  ["card, Cyrillic Ze for a 3", "credit_card", "amex З782 822463 10005", "amex [REDACTED_CREDIT_CARD]"],
  ["aws key id, Cyrillic look-alikes", "secret_key", "key АКIАIOSFODNN7EXAMPLE", "key [REDACTED_SECRET_KEY]"],
  // Folding would join the Cyrillic р to the IBAN; the pass before folding finds it.
  ["iban after a Cyrillic word, full-width", "iban", "номерＤＥ89 3704 0044 0532 0130 00", "номер[REDACTED_IBAN]"],
  [
    "PEM header in lower case",
    "secret_key",
    "-----begin private key-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----end private key-----",
    "[REDACTED_SECRET_KEY]",
  ],
];

// Near misses: must come out unchanged with the entity enabled.
const NEGATIVES: readonly (readonly [name: string, entity: PiiEntity, input: string])[] = [
  ["no TLD", "email", "user@localhost"],
  ["handle", "email", "ping @someone on chat"],
  ["decorator", "email", "use @Component in Angular"],
  ["Cyrillic handle", "email", "Напишите мне: @иван в телеграме"],
  ["Cyrillic word, @, number", "email", "цена@100руб"],
  ["Chinese handle", "email", "请关注@张伟 的微博"],
  ["Chinese words around @, no TLD", "email", "价格@例子"],
  // A top-level domain in those letters that is not a known one is not read after a Latin label:
  // a dot then Chinese after a Latin word is a sentence going on.
  ["Latin host, full stop, Chinese sentence", "email", "请登录user@localhost。然后重启"],
  ["Japanese, @ before a number", "email", "あと@3人です。"],
  ["short international", "phone", "+12345"],
  ["order number without separators", "phone", "order 4155552671 shipped"],
  ["US area code starting 1", "phone", "123-456-7890"],
  ["US exchange starting 1", "phone", "415-155-2671"],
  ["date", "phone", "2024-01-15"],
  ["semver", "phone", "1.2.3"],
  ["invalid Luhn", "credit_card", "4111 1111 1111 1112"],
  ["invalid Luhn compact", "credit_card", "5555555555554445"],
  ["Luhn-valid but no card network prefix", "credit_card", "0000000000000000"],
  ["too long run", "credit_card", "41111111111111111111111"],
  ["12 digits", "credit_card", "4111 1111 1111"],
  ["invalid IBAN checksum", "iban", "DE88 3704 0044 0532 0130 00"],
  ["invalid IBAN compact", "iban", "GB29NWBK60161331926818"],
  ["IBAN shape too short", "iban", "DE89 3704"],
  ["invalid IBAN before a word, no valid prefix", "iban", "AT61 1904 3002 3457 3202 from me"],
  ["4-digit numbers one per line", "credit_card", "codes:\n2024\n1234\n5678\n9012\n"],
  ["two card-like lines, Luhn fails", "credit_card", "4111 1111\n1111 1112"],
  ["ssn area 000", "us_ssn", "000-12-3456"],
  ["ssn area 666", "us_ssn", "666-12-3456"],
  ["ssn area 9xx", "us_ssn", "912-34-5678"],
  ["ssn group 00", "us_ssn", "123-00-6789"],
  ["ssn serial 0000", "us_ssn", "123-45-0000"],
  ["ssn mixed separators", "us_ssn", "123-45 6789"],
  ["ssn, one group per line", "us_ssn", "counts:\n123\n45\n6789\n"],
  ["a table row ending in 3 and 2 digits, a year on the next", "us_ssn", "2023 120 45\n2024 130 50"],
  ["the same, the row's space kept", "us_ssn", "2023 120 45 \n2024 130 50"],
  ["decimal at a line end, a number on the next", "us_ssn", "total 123.45.\n6789 units"],
  ["tab-separated card, Luhn fails", "credit_card", "4111\t1111\t1111\t1112"],
  ["quoted wrapped card, Luhn fails", "credit_card", "4111 1111\n> 1111 1112"],
  ["quoted wrapped IBAN, checksum fails", "iban", "DE88 3704 0044\n> 0532 0130 00"],
  ["ssn inside a longer run", "us_ssn", "1-123-45-6789"],
  ["octet out of range", "ip_address", "256.1.1.1"],
  ["three parts", "ip_address", "version 1.2.3"],
  ["five parts", "ip_address", "1.2.3.4.5"],
  ["v-prefixed version", "ip_address", "upgrade to v1.2.3.4"],
  ["version word", "ip_address", "Version 10.0.0.1 released"],
  ["leading zeros", "ip_address", "01.02.03.04"],
  ["time of day", "ip_address", "at 12:30:45 today"],
  ["MAC address", "ip_address", "00:1a:2b:3c:4d:5e"],
  ["MAC address before a colon", "ip_address", "mac 00:1a:2b:3c:4d:5e: set"],
  ["time before a colon", "ip_address", "at 12:30:45: done"],
  ["C++ scope", "ip_address", "std::vector and ::"],
  ["two double colons", "ip_address", "2001::db8::1"],
  ["too many groups", "ip_address", "1:2:3:4:5:6:7:8:9"],
  ["sk- without digits", "secret_key", "pip install sk-learn-is-not-the-package-name"],
  ["short sk-", "secret_key", "sk-12345"],
  ["task- prefix", "secret_key", "task-1234567890abcdefghij"],
  ["AKIA too short", "secret_key", "AKIA1234"],
  [
    "public key block",
    "secret_key",
    "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----",
  ],
  ["ghp too short", "secret_key", "ghp_abc123"],
];

describe("redactPii: true positives (exact output)", () => {
  it.each(POSITIVES)("%s", (_name, entity, input, expected) => {
    const result = redactPii(input, [entity]);
    expect(result.text).toBe(expected);
    const count = expected.split(`[REDACTED_${entity.toUpperCase()}]`).length - 1;
    expect(result.findings).toEqual([{ entity, count }]);
  });
});

// One number per network prefix validCard accepts (public test numbers where there is one; the
// others made Luhn-valid for this table), and the prefixes just outside each range.
const CARD_NETWORKS: readonly (readonly [network: string, number: string])[] = [
  ["Visa 4", "4111111111111111"],
  ["Mastercard 51", "5105105105105100"],
  ["Mastercard 55", "5555555555554444"],
  ["Mastercard 2221 (first 2-series)", "2221000000000009"],
  ["Mastercard 2223", "2223003122003222"],
  ["Mastercard 2720 (last 2-series)", "2720990000000007"],
  ["Amex 34", "340000000000009"],
  ["Amex 37", "378282246310005"],
  ["Diners 36", "36227206271667"],
  ["Diners 38", "38520000023237"],
  ["Diners 300", "30000000000004"],
  ["Diners 305", "30569309025904"],
  ["JCB 3528 (first)", "3528000000000007"],
  ["JCB 3530", "3530111333300000"],
  ["JCB 3589 (last)", "3589000000000003"],
  ["Discover 6011", "6011111111111117"],
  ["UnionPay 62", "6200000000000005"],
  ["Maestro 67", "6759649826438453"],
  ["Maestro 50", "5018000000000009"],
  ["Maestro 56", "5600000000000003"],
  ["Maestro 57", "5700000000000002"],
  ["Maestro 58", "5800000000000001"],
];
const NOT_A_NETWORK: readonly string[] = [
  "1000000000000008",
  "2220000000000000",
  "2721000000000004",
  "3060000000000001",
  "3500000000000009",
  "3527000000000008",
  "3590000000000000",
  "5900000000000000",
  "7000000000000005",
  "8000000000000003",
  "9000000000000001",
];

describe("redactPii: an entity among neighbours of every kind", () => {
  /** mulberry32: a small seeded generator, so a failure names a context that can be run again. */
  const seeded = (seed: number) => () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  const SAMPLES: Readonly<Partial<Record<PiiEntity, readonly string[]>>> = {
    // IBANs of every length modulo 4, compact and grouped.
    iban: [
      "AT61 1904 3002 3457 3201",
      "ES91 2100 0418 4502 0005 1332",
      "PL61 1090 1014 0000 0712 1981 2874",
      "DE89 3704 0044 0532 0130 00",
      "GB29 NWBK 6016 1331 9268 19",
      "FR14 2004 1010 0505 0001 3M02 606",
      "NO93 8601 1117 947",
      "DE89370400440532013000",
      // Tabs, two spaces, wrapped behind a quote prefix.
      "AT61\t1904\t3002\t3457\t3201",
      "ES91  2100  0418  4502  0005  1332",
      "GB29 NWBK 6016\n> > 1331 9268 19",
      "PL61 1090 1014 0000 \r\n>> 0712 1981 2874",
    ],
    credit_card: [
      "4111 1111 1111 1111",
      "4111111111111111",
      "5555-5555-5555-4444",
      "3782 822463 10005",
      "4111\t1111\t1111\t1111",
      "5555  5555  5555  4444",
      "6011 1111\n> 1111 1117",
      "3782 822463\r\n>>> 10005",
    ],
    us_ssn: ["123-45-6789", "234 56 7890", "345.67.8901", "123-45-\n6789", "234-\r\n56-7890", "345-\n> 67-8901"],
    email: ["john.doe@example.com", "o'connor@mail.example.ie"],
    ip_address: ["192.168.1.20", "2001:db8::1", "fe80::1:2:3"],
    phone: ["+44 20 7946 0958", "(415) 555-2671", "415-555-2671", "+1 415 555 2671"],
  };
  // Words of IBAN and card shape, short words a group could take, numbers, punctuation.
  const WORDS = ["to", "for", "from", "with", "then", "me", "AND", "abcd", "AB12", "DE", "1234", "2024", "12", "1"];
  const SEPARATORS = [" ", "\n", "\r\n", ", ", ". ", ": ", " (", ") ", "\t", " - ", "  ", "\n> ", "\t\t"];

  it.each(Object.entries(SAMPLES))("%s: found whatever stands before and after it (seeded)", (entity, samples) => {
    const random = seeded(PII_ENTITIES.indexOf(entity as PiiEntity) + 1);
    const pick = <T>(items: readonly T[]) => items[Math.floor(random() * items.length)] as T;
    const missed: string[] = [];
    for (let i = 0; i < 400; i++) {
      const before = Array.from({ length: Math.floor(random() * 3) }, () => pick(WORDS) + pick(SEPARATORS)).join("");
      const after = Array.from({ length: Math.floor(random() * 3) }, () => pick(SEPARATORS) + pick(WORDS)).join("");
      const sample = pick(samples);
      const text = before + sample + after;
      const { text: out } = redactPii(text, [entity as PiiEntity]);
      // Missing it fails; taking a neighbour with it does not (`+44 20 7946 0958 12` may be one number).
      if (!out.includes(piiPlaceholder(entity as PiiEntity)) || out.includes(sample)) missed.push(JSON.stringify(text));
    }
    expect(missed).toEqual([]);
  });
});

describe("credit_card: every network prefix", () => {
  it.each(CARD_NETWORKS)("%s (%s) is redacted, and blocked in block mode", (_network, number) => {
    expect(luhnValid(number)).toBe(true);
    expect(redactPii(`pay with ${number} today`, ["credit_card"])).toEqual({
      text: "pay with [REDACTED_CREDIT_CARD] today",
      findings: [{ entity: "credit_card", count: 1 }],
    });
    expect(applyPiiPolicy({ mode: "block", entities: ["credit_card"], reason: null }, `card ${number}`)).toMatchObject({
      action: "block",
      findings: [{ entity: "credit_card", count: 1 }],
    });
  });

  it.each(NOT_A_NETWORK)("%s: Luhn-valid, outside every network prefix: unchanged", (number) => {
    expect(luhnValid(number)).toBe(true);
    expect(redactPii(`ref ${number} today`, ["credit_card"])).toEqual({ text: `ref ${number} today`, findings: [] });
  });
});

describe("redactPii: near-miss negatives (unchanged)", () => {
  it.each(NEGATIVES)("%s", (_name, entity, input) => {
    expect(redactPii(input, [entity])).toEqual({ text: input, findings: [] });
  });

  it("near misses stay unchanged with every entity enabled too", () => {
    for (const [name, , input] of NEGATIVES) {
      if (name === "public key block") continue; // its base64 is not PII, but nothing else claims it either
      expect(redactPii(input, PII_ENTITIES).text, name).toBe(input);
    }
  });
});

describe("redactPii: all entities together", () => {
  it("redacts a mixed prompt in detector order and counts each type", () => {
    const input =
      "Hi, I'm jane@example.com, phone +44 20 7946 0958, card 4111-1111-1111-1111, " +
      "IBAN GB29 NWBK 6016 1331 9268 19, SSN 123-45-6789, from 203.0.113.7 / 2001:db8::7, " +
      "key AKIAIOSFODNN7EXAMPLE. Also bob@example.org.";
    const result = redactPii(input, PII_ENTITIES);
    expect(result.text).toBe(
      "Hi, I'm [REDACTED_EMAIL], phone [REDACTED_PHONE], card [REDACTED_CREDIT_CARD], " +
        "IBAN [REDACTED_IBAN], SSN [REDACTED_US_SSN], from [REDACTED_IP_ADDRESS] / [REDACTED_IP_ADDRESS], " +
        "key [REDACTED_SECRET_KEY]. Also [REDACTED_EMAIL].",
    );
    expect(result.findings).toEqual([
      { entity: "secret_key", count: 1 },
      { entity: "email", count: 2 },
      { entity: "iban", count: 1 },
      { entity: "credit_card", count: 1 },
      { entity: "us_ssn", count: 1 },
      { entity: "ip_address", count: 2 },
      { entity: "phone", count: 1 },
    ]);
  });

  it("only the listed entities are touched", () => {
    const input = "mail jane@example.com from 10.1.2.3";
    expect(redactPii(input, ["ip_address"]).text).toBe("mail jane@example.com from [REDACTED_IP_ADDRESS]");
    expect(redactPii(input, []).text).toBe(input);
  });

  it("leaves text without an entity exactly as given, whatever its form (normalization is for detection)", () => {
    for (const text of [
      "ｗｉｄｅ ｔｅｘｔ ４２",
      "family 👨\u200d👩\u200d👧",
      "soft\u00adhyphen – dash",
      "٤٢ apples",
    ]) {
      expect(redactPii(text, PII_ENTITIES)).toEqual({ text, findings: [] });
    }
  });

  it("keeps Russian and Greek text as written: nothing found in ordinary sentences, a look-alike address redacted in place", () => {
    const pii = DEV_MANIFEST.requestPolicy.pii;
    for (const text of [RUSSIAN, GREEK, "Позвоните по номеру 8 800 555-35-35 или приходите к 10:30."]) {
      expect(applyPiiPolicy(pii, text)).toEqual({ action: "allow", text, findings: [] });
    }
    // "ivаn.petrоv@mаil.ru" with Cyrillic а and о: no address as sent, one once folded.
    expect(applyPiiPolicy(pii, "Напишите мне на ivаn.petrоv@mаil.ru до пятницы, пожалуйста.")).toEqual({
      action: "allow",
      text: "Напишите мне на [REDACTED_EMAIL] до пятницы, пожалуйста.",
      findings: [{ entity: "email", count: 1 }],
    });
    expect(applyPiiPolicy(pii, `${GREEK} Γράψτε στο maria@exαmple.gr.`)).toEqual({
      action: "allow",
      text: `${GREEK} Γράψτε στο [REDACTED_EMAIL].`,
      findings: [{ entity: "email", count: 1 }],
    });
  });

  it("rejects an unknown entity name", () => {
    expect(() => redactPii("x", ["passport" as PiiEntity])).toThrow(
      expect.objectContaining({ code: "PII_ENTITY_UNKNOWN" }),
    );
  });
});

describe("redactPii: every view is searched before anything is replaced", () => {
  const dev = DEV_MANIFEST.requestPolicy.pii.entities;
  const GHP = `ghp_${"a1B2c3D4e5".repeat(3)}f6G7h8`;

  // Each once left the part of the entity that one view could not see to the model: a placeholder
  // put in for the fragment the text as sent shows hid the whole entity from the view that sees it.
  const WHOLE: readonly (readonly [name: string, input: string, expected: string, entity: PiiEntity])[] = [
    ["Cyrillic о inside an address", "write to ivanоv.petr@example.com", "write to [REDACTED_EMAIL]", "email"],
    ["Cyrillic о in the first label", "jоhn@example.com", "[REDACTED_EMAIL]", "email"],
    ["Cherokee A first", "Ꭺlice.smith@example.com", "[REDACTED_EMAIL]", "email"],
    ["Greek iota first", "ιvanov@example.com", "[REDACTED_EMAIL]", "email"],
    ["Cyrillic а in the domain", "mail john@mail.exаmple.com", "mail [REDACTED_EMAIL]", "email"],
    [
      "Cyrillic а in an sk- key",
      "key sk-abcdefghij1234567890аBCDEFGH123456",
      "key [REDACTED_SECRET_KEY]",
      "secret_key",
    ],
    ["Cyrillic Е after a GitHub token's 36", `${GHP}ЕXTRA0123`, "[REDACTED_SECRET_KEY]", "secret_key"],
    ["zero-width space in an address", "jo\u200bhn.smith@example.com", "[REDACTED_EMAIL]", "email"],
    [
      "zero-width space in an sk- key",
      "sk-abcdefghij1234567890\u200bXYZW123456",
      "[REDACTED_SECRET_KEY]",
      "secret_key",
    ],
  ];

  it.each(WHOLE)("%s", (_name, input, expected, entity) => {
    expect(redactPii(input, dev)).toEqual({ text: expected, findings: [{ entity, count: 1 }] });
  });

  it("finds an entity the text as sent shows even when normalizing joins it to a neighbour, beside one only the normalized text shows", () => {
    // Normalized, ¹ is a 17th digit: only the text as sent has the card, only the normalized text the
    // address; the model gets the normalized text with the card replaced (the footnote mark stays).
    expect(redactPii("card 4111111111111111¹ mail john.doe＠example.com", dev)).toEqual({
      text: "card [REDACTED_CREDIT_CARD]1 mail [REDACTED_EMAIL]",
      findings: [
        { entity: "email", count: 1 },
        { entity: "credit_card", count: 1 },
      ],
    });
    expect(redactPii("n°①4111111111111111 и jо\u200bhn@example.com", dev).text).toBe(
      "n°1[REDACTED_CREDIT_CARD] и [REDACTED_EMAIL]",
    );
  });

  it("finds an entity that a removed invisible character glued to the one before it", () => {
    // Normalized, the zero-width space is gone and the IBAN has no boundary before it; the card's
    // placeholder gives it one back, and the next round finds it.
    expect(redactPii("4111111111111111\u200bGB82WEST1234569876543２", dev)).toEqual({
      text: "[REDACTED_CREDIT_CARD][REDACTED_IBAN]",
      findings: [
        { entity: "iban", count: 1 },
        { entity: "credit_card", count: 1 },
      ],
    });
    expect(redactPii("+1 212 555 1234\u200bGB82WEST1234569876543２", dev).text).toBe("[REDACTED_PHONE][REDACTED_IBAN]");
  });

  it("finds an entity written with combining marks over its characters, and replaces it with its marks", () => {
    // U+0336 (long stroke overlay) composes with no letter: normalizing keeps it, and without the
    // view that drops marks only the part after it was redacted (`jo\u0336[REDACTED_EMAIL]`).
    expect(redactPii("mail jo\u0336hn@example.com now", PII_ENTITIES)).toEqual({
      text: "mail [REDACTED_EMAIL] now",
      findings: [{ entity: "email", count: 1 }],
    });
    // Marks over every character, the last one's included; a card and an IBAN the same way.
    expect(redactPii("x j\u0336o\u0336h\u0336n\u0336@e\u0336xample.com\u0336\u20dd y", PII_ENTITIES).text).toBe(
      "x [REDACTED_EMAIL] y",
    );
    expect(redactPii("card 4111\u0336 1111 1111 1111, IBAN GB82\u0338WEST12345698765432", PII_ENTITIES).text).toBe(
      "card [REDACTED_CREDIT_CARD], IBAN [REDACTED_IBAN]",
    );
    // Text whose marks are its letters (Hindi vowel signs, Hebrew points) keeps them, and around an
    // entity too; without an entity it is left exactly as given.
    expect(redactPii("हिन्दी पाठ john@example.com और", PII_ENTITIES).text).toBe("हिन्दी पाठ [REDACTED_EMAIL] और");
    for (const text of ["हिन्दी में लिखा पाठ", "שָׁלוֹם עוֹלָם", "a\u0336b\u0336c 123"]) {
      expect(redactPii(text, PII_ENTITIES)).toEqual({ text, findings: [] });
    }
  });

  it("keeps a Russian prompt without PII exactly as given, whatever normalizing would change", () => {
    const text = "Отчёт\u00a0— в приложении;\u200b сроки: ２ недели, ответ до 10:30 (см. п.\u00a03).";
    expect(normalizeCharacters(text)).not.toBe(text);
    expect(redactPii(text, dev)).toEqual({ text, findings: [] });
  });

  it("makes overlapping detections of different entities one placeholder, of the longest, counted once", () => {
    // sk- key (stops at @) inside an address: once the key alone went and left "@example.com".
    expect(redactPii("from sk-abcdefghij1234567890@example.com today", dev)).toEqual({
      text: "from [REDACTED_EMAIL] today",
      findings: [{ entity: "email", count: 1 }],
    });
    // The IPv4 tail of an IPv6 address is found by both of its detectors: one placeholder.
    expect(redactPii("peer ::ffff:192.0.2.128 and 10.0.0.1", dev)).toEqual({
      text: "peer [REDACTED_IP_ADDRESS] and [REDACTED_IP_ADDRESS]",
      findings: [{ entity: "ip_address", count: 2 }],
    });
  });

  it("keeps the text around an entity when the normalized text is what the model gets (Chinese, Japanese, Russian)", () => {
    // Normalizing changes the full-width comma and brackets, so the model gets the normalized text;
    // the entity found as sent is moved into it at its own edges, not widened to the next ASCII.
    const cases: [string, string][] = [
      [
        // The Chinese letters before the address go with it (emailRegex); the colon stops them.
        "请联系：john@example.com，谢谢。我们明天开会讨论项目进度，请准备好报告。",
        "请联系:[REDACTED_EMAIL],谢谢。我们明天开会讨论项目进度,请准备好报告。",
      ],
      [
        "カード番号は4111111111111111です。明日までに支払いを完了してください（重要）。",
        "カード番号は[REDACTED_CREDIT_CARD]です。明日までに支払いを完了してください(重要)。",
      ],
      [
        "john@example.comまたはаnna@example.orgに連絡してください（至急）",
        // `または` goes with the second address (Japanese letters before an `@`), up to where the
        // first one ends: two addresses, two placeholders.
        "[REDACTED_EMAIL][REDACTED_EMAIL]に連絡してください(至急)",
      ],
      ["Hi оleg@example.com\u200b", "Hi [REDACTED_EMAIL]"],
      ["Пишите на адрес: оleg@example.com\u00a0— спасибо", "Пишите на адрес: [REDACTED_EMAIL] - спасибо"],
    ];
    for (const [text, expected] of cases) expect(redactPii(text, dev).text, text).toBe(expected);
    expect(redactPii(cases[2]?.[0] as string, dev).findings).toEqual([{ entity: "email", count: 2 }]);
  });

  it("normalizeCharacters cut where cuttable says, piece by piece, is normalizeCharacters of the whole", () => {
    const check = (text: string) => {
      const pieces: string[] = [];
      let from = 0;
      for (let i = 1; i < text.length; i++) {
        if (cuttable(text, i)) {
          pieces.push(text.slice(from, i));
          from = i;
        }
      }
      pieces.push(text.slice(from));
      expect(pieces.map(normalizeCharacters).join(""), JSON.stringify(text)).toBe(normalizeCharacters(text));
    };
    // Random texts over characters that compose, reorder, decompose, vanish or pair up.
    const pool = [
      ..."aeoAO<=>1 ",
      ..."\u0301\u0308\u0316\u0327\u0336\u0338\u093c\u0903\u0b3e\u0b47\u0bbe\u0bc6\u0cc2\u0cc6",
      ..."ｶﾞﾟ\uff9e", // half-width voiced marks: letters whose NFKD is a combining mark
      ..."ᄀᄒ\u1161\u1175\u11a8\u11ab가한ㄱㅏ",
      ..."ﬁ㎏½¹①４＠，（ᅠ\u200b\u00ad\u2060\ufeff—\u2212٤",
      ..."пароль中文です。ιΩÅ\u212b\u0915\u0929",
      "😀",
      "\ud800",
      "\udc00",
    ];
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x80000000;
    };
    // A letter that decomposes to a mark is reordered with the marks before it, not only the last.
    check("a\u0316\u0336\uff9e");
    // A vowel and then a trailing jamo compose with what the code points before them made.
    for (const text of ["\u1100\u1161\u11a8", "가\u11a8", "ㄱㅏ\u11a8", "\u3131\u1161\u11a8x"]) check(text);
    for (let n = 0; n < 3000; n++) {
      let text = "";
      const length = 1 + Math.floor(random() * 12);
      for (let k = 0; k < length; k++) text += pool[Math.floor(random() * pool.length)];
      check(text);
    }
  });

  it("normalizeCharacters cut before any ASCII character, piece by piece, is normalizeCharacters of the whole", () => {
    // What redactPii relies on to move what it found in the text as sent into the normalized text.
    const corpus = [
      "a\u0301e\u0308o\u0336 n\u0303", // combining marks after ASCII letters (composing, and U+0336 not)
      "\u0301a \u0338= <\u0338 >\u0338", // a mark first; ≠ ≮ ≯ compose with the ASCII before them
      "ﬁﬂ ﬀi Ǆ ǅ ĳ ㎏ ℡ ½ №5", // ligatures and compatibility letters
      "ＡＢＣ＠ｅｘａｍｐｌｅ．ｃｏｍ ４１１１－１１１１", // full-width
      "한국어 ᄒ\u1161\u11ab ᄀ\u1161a 가\u11a8", // Hangul syllables and conjoining jamo
      "x² 10⁻³ H₂O ①②⑳ ⁴¹¹¹", // super- and subscripts, circled digits
      "jo\u200bhn\u200c\u200d\ufeff\u00ad\u2060@\u202eexample.com", // invisible characters
      "123–45—6789 \u2212 ٤١١١ ४१ ৪", // dashes and digits of other scripts
      "пароль Ꭺlice ιvanov ǅ\u0301 😀a\ud800b\udc00", // other scripts, astral and lone surrogates
      "e\u0301\u0327 \u0915\u093c \u0929 Å Ω K", // reordered marks, nukta, singletons
    ];
    for (const text of corpus) {
      const pieces: string[] = [];
      let from = 0;
      for (let i = 1; i < text.length; i++) {
        if (text.charCodeAt(i) < 0x80) {
          pieces.push(text.slice(from, i));
          from = i;
        }
      }
      pieces.push(text.slice(from));
      expect(pieces.map(normalizeCharacters).join(""), JSON.stringify(text)).toBe(normalizeCharacters(text));
    }
  });
});

describe("applyPiiPolicy", () => {
  const text = "mail jane@example.com, card 4111 1111 1111 1111";

  it('"redact" returns the redacted text and the counts', () => {
    expect(applyPiiPolicy({ mode: "redact", entities: ["email", "credit_card"], reason: null }, text)).toEqual({
      action: "allow",
      text: "mail [REDACTED_EMAIL], card [REDACTED_CREDIT_CARD]",
      findings: [
        { entity: "email", count: 1 },
        { entity: "credit_card", count: 1 },
      ],
    });
  });

  it('"block" names the entity types, never the values', () => {
    const outcome = applyPiiPolicy({ mode: "block", entities: ["email", "credit_card", "phone"], reason: null }, text);
    expect(outcome).toEqual({
      action: "block",
      findings: [
        { entity: "email", count: 1 },
        { entity: "credit_card", count: 1 },
      ],
      reason: 'PII found (mode "block"): email, credit_card',
    });
    expect(JSON.stringify(outcome)).not.toContain("jane");
    expect(JSON.stringify(outcome)).not.toContain("4111");
  });

  it('"block" with nothing found lets the text through unchanged', () => {
    expect(applyPiiPolicy({ mode: "block", entities: ["email"], reason: null }, "nothing here")).toEqual({
      action: "allow",
      text: "nothing here",
      findings: [],
    });
  });

  it('"off" leaves the text untouched', () => {
    expect(applyPiiPolicy({ mode: "off", entities: [], reason: "dev only: no real user data here" }, text)).toEqual({
      action: "allow",
      text,
      findings: [],
    });
  });
});

describe("checksums", () => {
  it.each([
    ["4111111111111111", true],
    ["4111111111111112", false],
    ["79927398713", true],
    ["79927398710", false],
    ["", false],
    ["12a4", false],
  ] as const)("luhnValid(%s) = %s", (digits, valid) => expect(luhnValid(digits)).toBe(valid));

  it.each([
    ["DE89370400440532013000", true],
    ["GB29NWBK60161331926819", true],
    ["NL91ABNA0417164300", true],
    ["DE89370400440532013001", false],
    ["XX00", false],
    ["de89370400440532013000", false],
  ] as const)("ibanValid(%s) = %s", (iban, valid) => expect(ibanValid(iban)).toBe(valid));

  it.each([
    ["2001:db8::1", true],
    ["::", true],
    ["1:2:3:4:5:6:7:8", true],
    ["1:2:3:4:5:6:7", false],
    ["1::2::3", false],
    ["1:2:3:4:5:6:1.2.3.4", true],
    ["::ffff:300.1.1.1", false],
    ["12345::1", false],
  ] as const)("ipv6Valid(%s) = %s", (text, valid) => expect(ipv6Valid(text)).toBe(valid));
});

describe("piiAcrossMessages: an entity split over chat messages", () => {
  const redact: PiiConfig = { mode: "redact", entities: [...PII_ENTITIES], reason: null };
  const across = (contents: string[]) => piiAcrossMessages(redact, contents);
  /** Each chat is found to hold one `entity` split over its two messages. */
  const expectEach = (entity: PiiEntity, chats: string[][]) => {
    for (const contents of chats) {
      expect(across(contents), JSON.stringify(contents)).toEqual([{ entity, count: 1 }]);
    }
  };

  it("finds digits that run on from one message into the next", () => {
    expect(across(["my card is 4111 1111", " 1111 1111"])).toEqual([{ entity: "credit_card", count: 1 }]);
    expect(across(["my card is 4111 1111", "1111 1111"])).toEqual([{ entity: "credit_card", count: 1 }]);
    expect(across(["ssn 123-45", "-6789 ok"])).toEqual([{ entity: "us_ssn", count: 1 }]);
    expect(across(["ssn 123-45", "6789"])).toEqual([{ entity: "us_ssn", count: 1 }]);
    // Around white space, zero-width characters, full-width digits, one digit on a side.
    for (const contents of [
      ["4111 1111\n", "1111 1111"],
      ["4111 1111 ", " 1111 1111"],
      ["４１１１ １１１１", "１１１１ １１１１"],
      ["4111 1111\u200b", "1111 1111"],
      ["4111 1111 1111 111", "1"],
    ]) {
      expect(across(contents), JSON.stringify(contents)).toEqual([{ entity: "credit_card", count: 1 }]);
    }
    expect(across(["123-45-678", "9"])).toEqual([{ entity: "us_ssn", count: 1 }]);
    // A whole card elsewhere does not hide the split one.
    expect(across(["4111111111111111", "2, and 4111 1111", " 1111 1111"])).toEqual([
      { entity: "credit_card", count: 1 },
    ]);
  });

  it("joins the two sides as typed on, with a space and with a dash: an SSN needs each", () => {
    // An SSN keeps one kind of separator, so each split below is found only with its own.
    expect(across(["ssn 123-45-67", "89 ok"])).toEqual([{ entity: "us_ssn", count: 1 }]); // as typed on
    expect(across(["ssn 536 22", "1234 ok"])).toEqual([{ entity: "us_ssn", count: 1 }]); // a space
    expect(across(["ssn 536 22 ", " 1234 ok"])).toEqual([{ entity: "us_ssn", count: 1 }]);
    expect(across(["ssn 123-45", "6789 ok"])).toEqual([{ entity: "us_ssn", count: 1 }]); // a dash
    expect(across(["ssn 123.45.67", "89 ok"])).toEqual([{ entity: "us_ssn", count: 1 }]);
    // A card with each separator, cut in a group and between groups.
    expectEach("credit_card", [
      ["card 41111111", "11111111"],
      ["card 4111111111", "111111"],
      ["card 4111 1111", "1111 1111"],
      ["card 4111-1111", "1111-1111"],
      ["card 4111-11", "11-1111-1111"],
      ["card 6011 1111 1111", "1117 thanks"],
    ]);
  });

  it("finds an IBAN split over two messages, cut in a group or between groups, compact or grouped", () => {
    expect(ibanValid("GB82WEST12345698765432")).toBe(true);
    expectEach("iban", [
      ["to GB82 WEST 1234", "5698 7654 32 please"],
      ["to GB82 WEST 1234 ", " 5698 7654 32 please"],
      ["to GB82 WEST 12", "34 5698 7654 32 please"],
      ["to GB82WEST1234569", "8765432 please"],
      ["to GB8", "2 WEST 1234 5698 7654 32"],
      ["to GB82 WEST 1234 5698 7654 3", "2"],
    ]);
  });

  it("finds the longest IBAN (34 characters, 42 grouped) with all but one digit on either side", () => {
    // SPLIT_WINDOW (162) is longer than any entity as written, so wherever the cut falls the whole
    // entity is looked at: 41 characters on the left and 1 on the right, or 3 and 39.
    const compact = "XK10WEST12345678901234567890123456";
    expect(compact).toHaveLength(34);
    expect(ibanValid(compact)).toBe(true);
    const grouped = compact.replace(/(.{4})(?!$)/g, "$1 ");
    expect(grouped).toHaveLength(42);
    const filler = "word ".repeat(200); // text before the entity, far outside the window, changes nothing
    for (const cut of [41, 40, 3, 4]) {
      const contents = [`${filler}iban ${grouped.slice(0, cut)}`, `${grouped.slice(cut)} ok ${filler}`];
      expect(across(contents), `cut at ${cut}`).toEqual([{ entity: "iban", count: 1 }]);
    }
    // Compact, 33 and 1, and with a zero-width space after every character (the window is taken
    // from twice as many characters as sent, as normalizing removes invisible ones).
    expect(across([`iban ${compact.slice(0, 33)}`, compact.slice(33)])).toEqual([{ entity: "iban", count: 1 }]);
    const invisible = [...grouped.slice(0, 41)].join("\u200b");
    expect(across([`iban ${invisible}`, grouped.slice(41)])).toEqual([{ entity: "iban", count: 1 }]);
    // Wrapped between every two groups with the widest line break the detector takes (2 spaces, CRLF,
    // a quote prefix of 4 spaced levels, 4 spaces): 162 characters, all but the last on the left,
    // or all but the first three on the right.
    const wrapped = compact.replace(/(.{4})(?!$)/g, "$1  \r\n > > > >    ");
    expect(wrapped).toHaveLength(162);
    expect(redactPii(wrapped, ["iban"]).text).toBe("[REDACTED_IBAN]");
    expect(across([`iban ${wrapped.slice(0, 161)}`, wrapped.slice(161)])).toEqual([{ entity: "iban", count: 1 }]);
    expect(across([`iban ${wrapped.slice(0, 3)}`, `${wrapped.slice(3)} ok`])).toEqual([{ entity: "iban", count: 1 }]);
  });

  it("leaves ordinary chats alone: entities inside one message, code, versions, words", () => {
    for (const contents of [
      ["card 4111 1111 1111 1111", "and mail a@b.example"],
      ["4111111111111111", "4111111111111111"],
      ["You are a helpful coding assistant", "@app.get('/items')\ndef items(): ..."],
      ["fix my code", "@torch.no_grad()"],
      ["upgrade to 10.0", ".0.1"],
      ["it costs 12", " dollars"],
      ["The answer is 212", "555 1234 is not it"],
      ["Call +1 212 555 0134", "12 times"],
      ["The meeting is on 2024-05", "-06 at 10"],
      ["hello", "world"],
      ["my card is 4111 1111 1111 1111"],
    ]) {
      expect(across(contents), JSON.stringify(contents)).toEqual([]);
    }
    expect(piiAcrossMessages({ mode: "off", entities: [], reason: "test" }, ["4111 1111", " 1111 1111"])).toEqual([]);
  });
});
