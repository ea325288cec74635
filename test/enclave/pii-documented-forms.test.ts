/**
 * Forms enclave/pipeline/pii.ts's comment documents that no other test held it to: a North-American
 * phone number with spaces between its groups (`NXX NXX XXXX`, with or without `1`), and every AWS
 * access key id prefix it names (`AKIA`, `ASIA`, `ABIA`, `ACCA`).
 */

import { describe, expect, it } from "vitest";
import { redactPii } from "../../enclave/pipeline/pii.ts";

describe("PII forms the detector comment names", () => {
  it.each([
    ["call 415 555 2671 today", "call [REDACTED_PHONE] today"],
    ["call 1 415 555 2671 today", "call [REDACTED_PHONE] today"],
    ["call (415) 555 2671 today", "call [REDACTED_PHONE] today"],
  ])("phone with spaces: %s", (text, expected) => {
    expect(redactPii(text, ["phone"])).toEqual({ text: expected, findings: [{ entity: "phone", count: 1 }] });
  });

  it("leaves a spaced North-American shape alone when its area code starts with 1", () => {
    expect(redactPii("call 115 555 2671 today", ["phone"]).findings).toEqual([]);
  });

  it.each(["AKIA", "ASIA", "ABIA", "ACCA"])("AWS access key id %s…", (prefix) => {
    expect(redactPii(`id ${prefix}IOSFODNN7EXAMPLE here`, ["secret_key"])).toEqual({
      text: "id [REDACTED_SECRET_KEY] here",
      findings: [{ entity: "secret_key", count: 1 }],
    });
  });
});
