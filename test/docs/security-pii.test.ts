/**
 * SECURITY.md's PII paragraph ("Non-goals and known limits") against the real redactor: each example
 * it gives of what is redacted, what is kept and what is not covered is run through `redactPii`
 * with every entity, and must come out as the page says. Each example is tied to the page by the
 * code span it appears in, and every code span of the page that holds an `@` or a run of digits
 * must be one of them (or named below as not a redaction example), so a sample added to the page
 * without a case here, or a case whose text left the page, fails too.
 */

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { piiAcrossMessages, redactPii } from "../../enclave/pipeline/pii.ts";
import { PII_ENTITIES } from "../../manifests/schema.ts";
import { REPO_ROOT } from "../helpers/cli.ts";

const PAGE = readFileSync(join(REPO_ROOT, "SECURITY.md"), "utf8");
const E = "[REDACTED_EMAIL]";
const CARD = "[REDACTED_CREDIT_CARD]";

/** `span`: the example as the page writes it; `input` what is redacted; `output` what the model gets. */
interface Case {
  readonly span: string;
  readonly input: string;
  readonly output: string;
}

const CASES: readonly Case[] = [
  // Look-alikes and invisible characters inside an address: replaced whole.
  { span: "ivanоv@…", input: "mail ivanоv@example.com now", output: `mail ${E} now` },
  { span: "jo\\u200bhn@…", input: "mail jo\u200bhn@example.com now", output: `mail ${E} now` },
  { span: "jo\\u0336hn@…", input: "mail jo\u0336hn@example.com now", output: `mail ${E} now` },
  { span: "jo\\u0301hn@…", input: "mail jo\u0301hn@example.com now", output: `mail ${E} now` },
  // RFC 5322 / 6531 local parts, scripts, and 。 as a dot.
  { span: "o'connor@…", input: "mail o'connor@example.com now", output: `mail ${E} now` },
  { span: "josé.garcía@…", input: "mail josé.garcía@example.com now", output: `mail ${E} now` },
  { span: "иван@пример.рф", input: "mail иван@пример.рф now", output: `mail ${E} now` },
  { span: "john@example。com", input: "mail john@example。com now", output: `mail ${E} now` },
  // Scripts without spaces: the letters before the @, up to 64 back to a space or punctuation.
  { span: "张伟@example.com", input: "张伟@example.com", output: E },
  { span: "张.伟@…", input: "张.伟@example.com", output: E },
  { span: "wei张伟@…", input: "wei张伟@example.com", output: E },
  { span: "张伟wei@…", input: "张伟wei@example.com", output: E },
  { span: "请联系张伟@…", input: "请联系张伟@example.com", output: E },
  {
    span: "我明天到北京.请发邮件到wei@…",
    input: "我明天到北京.请发邮件到wei@example.com",
    output: `我明天到北京.${E}`,
  },
  // Domains in those letters: listed top-level domains end them.
  { span: "wei@example.中国", input: "wei@example.中国", output: E },
  { span: "wei@例子.中国是我的邮箱", input: "wei@例子.中国是我的邮箱", output: `${E}是我的邮箱` },
  { span: "김철수@example.한국입니다", input: "김철수@example.한국입니다", output: `${E}입니다` },
  { span: "wei@北京.例子.中国", input: "wei@北京.例子.中国", output: E },
  { span: "ครู@โรงเรียน.ศึกษา.ไทย", input: "ครู@โรงเรียน.ศึกษา.ไทย", output: E },
  { span: "wei@例子.中国。我在北京。", input: "wei@例子.中国。我在北京。", output: `${E}。我在北京。` },
  { span: "wei@例子.未知", input: "wei@例子.未知", output: E },
  { span: "wei@example.未知", input: "wei@example.未知", output: E },
  // After Latin letters a 。 goes on with the sentence: no dot, so no address here.
  { span: "user@localhost。然后重启", input: "user@localhost。然后重启", output: "user@localhost。然后重启" },
  { span: "john@example.com。Thanks", input: "john@example.com。Thanks", output: `${E}。Thanks` },
  { span: "john@example.com。中国很大", input: "john@example.com。中国很大", output: `${E}。中国很大` },
  // Redacted with the address (the safe side).
  { span: "wei@例子.未知是我的邮箱", input: "wei@例子.未知是我的邮箱", output: E },
  { span: "…@예시.미지입니다", input: "김@예시.미지입니다", output: E },
  { span: "john@example。com。Thanks", input: "john@example。com。Thanks", output: E },
  { span: "john@example。com。中国很大", input: "john@example。com。中国很大", output: `${E}很大` },
  { span: "john@example.com.中国很大", input: "john@example.com.中国很大", output: `${E}很大` },
  { span: "user@localhost.然后重启", input: "user@localhost.然后重启", output: E },
  { span: "wei@例子.未知.我在北京.中国。", input: "wei@例子.未知.我在北京.中国。", output: `${E}。` },
  { span: "我明天到北京.wei@…", input: "我明天到北京.wei@example.com", output: E },
  // Not covered: kept.
  { span: "wei@北京.例子.中国是我的邮箱", input: "wei@北京.例子.中国是我的邮箱", output: `${E}.中国是我的邮箱` },
  { span: "wei@mail.example.未知", input: "wei@mail.example.未知", output: `${E}.未知` },
  { span: "wei@北京.例子。中国", input: "wei@北京.例子。中国", output: `${E}。中国` },
  { span: "张.伟wei@…", input: "张.伟wei@example.com", output: `张.${E}` },
  // Cards and IBANs: one or two spaces or tabs between groups are covered.
  { span: "4111\\t1111\\t…", input: "card 4111\t1111\t1111\t1111 ok", output: `card ${CARD} ok` },
  { span: "DE89  3704 …", input: "iban DE89  3704 0044 0532 0130 00 ok", output: "iban [REDACTED_IBAN] ok" },
  // SSNs: a line break before a dash, or in place of a space, is not covered; after a dash it is.
  { span: "123-45\\n-6789", input: "ssn 123-45\n-6789 ok", output: "ssn 123-45\n-6789 ok" },
  { span: "536 22\\n1234", input: "ssn 536 22\n1234 ok", output: "ssn 536 22\n1234 ok" },
  { span: "123-45-\\n6789", input: "ssn 123-45-\n6789 ok", output: "ssn [REDACTED_US_SSN] ok" },
  // Code shaped like an entity.
  { span: "icon@2x.png", input: "see icon@2x.png", output: `see ${E}` },
  { span: "lst[::2]", input: "x = lst[::2]", output: "x = lst[[REDACTED_IP_ADDRESS]]" },
];

/** Code spans of the page with an `@` or digits that are not redaction examples, and why. */
const NOT_EXAMPLES: Readonly<Record<string, string>> = {
  "--sha256": "an option",
  "@": "the character itself",
  "＠": "the character itself",
  "…到wei@": "a fragment of the example after it",
  "pa\\u0336ssword": "a policy rule example (test/pipeline/policy.test.ts)",
  "pa\\u0301ssword": "a policy rule example (test/pipeline/composed-marks.test.ts)",
  "ｐａ\\u0301ｓｓｗｏｒｄ": "a policy rule example (test/pipeline/composed-marks.test.ts)",
  "con\\u0336trasen\\u0303a": "a policy rule example (test/pipeline/composed-marks.test.ts)",
  "contrasen\\u200b\\u0303a": "a policy rule example (test/pipeline/composed-marks.test.ts)",
  "bo\\u0301mbé": "a policy rule example (test/pipeline/accent-folding.test.ts)",
};

function codeSpans(markdown: string): string[] {
  return [...markdown.matchAll(/`([^`\n]+)`/g)].map((m) => m[1] as string);
}

describe("SECURITY.md's PII examples, through the real redactor", () => {
  const all = [...PII_ENTITIES];

  it.each(CASES)("$span", ({ span, input, output }) => {
    expect(codeSpans(PAGE), "the example is on the page").toContain(span);
    expect(redactPii(input, all).text).toBe(output);
  });

  it("every example on the page has a case here", () => {
    const covered = new Set(CASES.map((c) => c.span));
    const missing = codeSpans(PAGE).filter(
      (span) => /@|\d{3}/.test(span) && !covered.has(span) && NOT_EXAMPLES[span] === undefined,
    );
    expect(missing).toEqual([]);
  });

  it("more than 2 spaces or tabs between groups, or too deep a wrapped line, are not covered, as the page says", () => {
    const keep = (text: string) => expect(redactPii(text, all).text, JSON.stringify(text)).toBe(text);
    const redacted = (text: string) => expect(redactPii(text, all).text, JSON.stringify(text)).toBe(`card ${CARD} ok`);
    keep("card 4111   1111   1111   1111 ok");
    // A line break as in wrapped text: up to 2 spaces or tabs before it, a quote prefix of up to 4
    // levels and up to 4 spaces or tabs after it.
    redacted("card 4111 1111  \n> > > > 1111 1111 ok");
    redacted("card 4111 1111\n>>    1111 1111 ok");
    keep("card 4111 1111   \n1111 1111 ok");
    keep("card 4111 1111\n> > > > > 1111 1111 ok");
    keep("card 4111 1111\n     1111 1111 ok");
    // An SSN split by a tab, two spaces or two line breaks; phone groups split by tabs or runs of spaces.
    for (const text of [
      "ssn 123\t45\t6789 ok",
      "ssn 123-45  6789 ok",
      "ssn 123-45\n\n6789 ok",
      "call 555\t123\t4567",
    ]) {
      keep(text);
    }
  });

  it("a card number, SSN or IBAN split over two chat messages is found across them", () => {
    const pii = { mode: "block", entities: all, reason: "test" } as const;
    expect(piiAcrossMessages(pii, ["card 4111 1111", "1111 1111"])).toEqual([{ entity: "credit_card", count: 1 }]);
    expect(piiAcrossMessages(pii, ["ssn 123-45", "6789"])).toEqual([{ entity: "us_ssn", count: 1 }]);
    expect(piiAcrossMessages(pii, ["iban DE89 3704 0044", "0532 0130 00"])).toEqual([{ entity: "iban", count: 1 }]);
  });
});
