/**
 * README.md says what `cloister up`'s manifest (manifests/examples/dev.json) does to a prompt: the
 * token limit that blocks it, the pattern rule, and the PII kinds it redacts. A change to that
 * request policy must change the sentence too, or a reader is told the wrong rules.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import devJson from "../../manifests/examples/dev.json" with { type: "json" };
import { REPO_ROOT } from "../helpers/cli.ts";

/** How README names each PII kind of the dev manifest. */
const README_NAMES: Record<string, string> = {
  email: "e-mail addresses",
  phone: "phone",
  credit_card: "card",
  iban: "IBAN",
  us_ssn: "US SSNs",
  ip_address: "IP addresses",
  secret_key: "secret keys",
};

describe("README on cloister up's request policy", () => {
  const readme = readFileSync(join(REPO_ROOT, "README.md"), "utf8").replace(/\s+/g, " ");
  const sentence = readme.slice(readme.indexOf("The enclave applies the attested manifest's `requestPolicy`"));
  const paragraph = sentence.slice(0, sentence.indexOf("PII redacted:"));
  const policy = devJson.requestPolicy;

  it("is found", () => {
    expect(paragraph.length).toBeGreaterThan(100);
  });

  it("names the dev manifest's block rules: its token limit and its private-key pattern, and nothing else", () => {
    const kinds = policy.rules.map((rule) => `${rule.kind}:${rule.action}`);
    expect(kinds).toEqual(["maxPromptTokens:block", "pattern:block"]);
    const limit = policy.rules.find((rule) => rule.kind === "maxPromptTokens")?.limit;
    expect(paragraph).toContain(`refuses one over ${limit} estimated tokens or holding a PEM private key`);
    expect(policy.rules.find((rule) => rule.kind === "pattern")?.pattern).toContain("PRIVATE KEY");
  });

  it("names each PII kind it redacts, and redaction as its mode", () => {
    expect(policy.pii.mode).toBe("redact");
    expect(Object.keys(README_NAMES).sort()).toEqual([...policy.pii.entities].sort());
    for (const entity of policy.pii.entities) expect(paragraph, entity).toContain(README_NAMES[entity] as string);
  });
});
