/**
 * The one formatter of zod issues (manifests/issues.ts) that the client policy, the attestation
 * policy, the broker's configuration, the host's API keys and the enclave's request check share:
 * every message names the field, the expected and the found value, and describes a found string by
 * its length only (it may be a key or a prompt put in the wrong place).
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { loadBrokerConfig } from "../../attestation/kbs/config.ts";
import { AzurePolicySchema } from "../../attestation/policy.ts";
import { simulatorClientPolicy } from "../../client/dev-policy.ts";
import { parseClientPolicy } from "../../client/policy.ts";
import { loadApiKeys } from "../../host/run.ts";
import { DEV_MANIFEST } from "../../manifests/dev.ts";
import { ManifestSchemaError } from "../../manifests/errors.ts";
import { fieldPaths, formatIssue } from "../../manifests/issues.ts";
import { parseManifest } from "../../manifests/schema.ts";
import { rejectionOf, thrownBy } from "../helpers/rejections.ts";
import { testDirectory } from "../helpers/test-directory.ts";

const dir = await testDirectory("cloister-issues-");

/** A simulator client policy as a plain JSON value, to break a field of. */
function simulatorPolicyValue() {
  const policy = simulatorClientPolicy({
    tee: "sim-snp",
    measurement: "ab".repeat(48),
    operatorKey: { kty: "OKP", crv: "Ed25519", x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" },
    modelSha256: "00".repeat(32),
    serviceName: "svc",
  });
  return JSON.parse(JSON.stringify(policy));
}

/** The unknown-field issue of `schema` refusing `extra` beside its own fields. */
function unknownKey(schema: z.ZodType, extra: Record<string, unknown>): z.core.$ZodIssue {
  const result = schema.safeParse(extra);
  const issue = result.error?.issues.find((i) => i.code === "unrecognized_keys");
  if (issue === undefined) throw new Error("expected an unknown field");
  return issue as z.core.$ZodIssue;
}

/** The first issue of `schema` refusing `value`, formatted. */
function formatted(schema: z.ZodType, value: unknown): string {
  const result = schema.safeParse(value);
  if (result.success) throw new Error("expected a refusal");
  return formatIssue(result.error.issues[0] as z.core.$ZodIssue, value, { root: "(root)" });
}

describe("validation messages name the expected and the found value", () => {
  it("a client policy's number out of range: the bound and the number found", () => {
    const value = simulatorPolicyValue();
    value.attestation.snp.minimumTcb.microcode = 1000;
    expect(thrownBy(() => parseClientPolicy(value), Error).message).toBe(
      "client policy: attestation.snp.minimumTcb.microcode: expected a number <= 255, found 1000",
    );
  });

  it("a client policy's attestation problems each name their path in the client policy file", () => {
    const value = simulatorPolicyValue();
    value.attestation.snp.allowedVmpls = [9];
    value.attestation.snp.hostData = ["zz"];
    expect(thrownBy(() => parseClientPolicy(value), Error).message).toBe(
      "client policy: attestation.snp.allowedVmpls[0]: expected a number <= 3, found 9; " +
        'attestation.snp.hostData: expected 32 bytes as 64 hex digits or a skip { "skip": { "reason": "…" } }, found an array of 1 item',
    );
  });

  it("a client policy lists every problem at once, those outside its attestation section too", () => {
    const value: Record<string, unknown> = simulatorPolicyValue();
    delete value.freshness;
    value.extra = true;
    (value as ReturnType<typeof simulatorPolicyValue>).attestation.snp.allowedVmpls = [9];
    expect(thrownBy(() => parseClientPolicy(value), Error).message).toBe(
      "client policy: freshness: expected object, found nothing; extra: expected no such field, found true; " +
        "attestation.snp.allowedVmpls[0]: expected a number <= 3, found 9",
    );
  });

  it("a client policy's unknown fields: each by its own path, at the top and nested, its value by kind and size only", () => {
    const value: Record<string, unknown> & ReturnType<typeof simulatorPolicyValue> = simulatorPolicyValue();
    value.foo = "-----BEGIN PRIVATE KEY-----\u0000\u001b[31m".repeat(20);
    (value.freshness as Record<string, unknown>).typo = 5;
    (value.manifest as Record<string, unknown>).allowedService = ["svc"];
    // The attestation section (its own parser) in the same words.
    (value.attestation.snp as Record<string, unknown>).typo = true;
    const message = thrownBy(() => parseClientPolicy(value), Error).message;
    expect(message).toBe(
      "client policy: manifest.allowedService: expected no such field, found an array of 1 item; " +
        "freshness.typo: expected no such field, found 5; foo: expected no such field, found a string of 660 characters; " +
        "attestation.snp.typo: expected no such field, found true",
    );
  });

  it("a client policy's unknown field named as a field one level down: said where it belongs", () => {
    // What a new user wrote: trustSimulator at the top, not in the attestation section. It said only
    // "trustSimulator: expected no such field, found false".
    const value: Record<string, unknown> & ReturnType<typeof simulatorPolicyValue> = simulatorPolicyValue();
    value.trustSimulator = false;
    value.maxClockSkewSeconds = 30;
    value.snp = {};
    (value.freshness as Record<string, unknown>).other = 1;
    expect(thrownBy(() => parseClientPolicy(value), Error).message).toBe(
      "client policy: freshness.other: expected no such field, found 1; " +
        "trustSimulator: expected no such field here (it belongs in attestation.trustSimulator), found false; " +
        "maxClockSkewSeconds: expected no such field here (it belongs in freshness.maxClockSkewSeconds), found 30; " +
        "snp: expected no such field here (it belongs in attestation.snp), found an empty object",
    );
  });

  it("a client policy's attestation section: an unknown field there is said where it belongs, by its path in the file", () => {
    const value: Record<string, unknown> & ReturnType<typeof simulatorPolicyValue> = simulatorPolicyValue();
    (value.attestation as Record<string, unknown>).measurements = [];
    expect(thrownBy(() => parseClientPolicy(value), Error).message).toContain(
      "attestation.measurements: expected no such field here (it belongs in attestation.snp.measurements), " +
        "found an empty array",
    );
  });

  it("fieldPaths: every field, through nullable and optional objects, never into a union's forms", () => {
    const schema = z.strictObject({
      a: z.number(),
      b: z.strictObject({ c: z.number() }).nullable(),
      d: z.strictObject({ e: z.strictObject({ f: z.boolean() }) }).optional(),
      g: z.union([z.array(z.string()), z.strictObject({ skip: z.strictObject({ reason: z.string() }) })]),
    });
    expect(fieldPaths(schema, "p")).toEqual(["p.a", "p.b", "p.b.c", "p.d", "p.d.e", "p.d.e.f", "p.g"]);
    // A field one level down is named; one two levels down is not guessed at.
    const known = fieldPaths(schema);
    expect(formatIssue(unknownKey(schema, { f: true }), {}, { root: "(root)", known })).toBe(
      "f: expected no such field, found nothing",
    );
    expect(formatIssue(unknownKey(schema, { c: 1 }), {}, { root: "(root)", known })).toBe(
      "c: expected no such field here (it belongs in b.c), found nothing",
    );
  });

  it("a client policy's unknown field whose name is no plain field name: counted on its object's path, never shown", () => {
    const secret = "sk-live-0123456789abcdef0123456789abcdef";
    const value: Record<string, unknown> & ReturnType<typeof simulatorPolicyValue> = simulatorPolicyValue();
    value[secret] = 1;
    (value.freshness as Record<string, unknown>)[`${secret}!`] = 2;
    (value.freshness as Record<string, unknown>).also = 3;
    const message = thrownBy(() => parseClientPolicy(value), Error).message;
    expect(message).toBe(
      "client policy: freshness.also: expected no such field, found 3; " +
        "freshness: expected no such field, found 1 field (names not shown: not plain identifiers); " +
        "(policy): expected no such field, found 1 field (names not shown: not plain identifiers)",
    );
    expect(message).not.toContain("sk-live");
  });

  it("a client policy without its attestation section: said once, as the section's own parser says it", () => {
    const value: Record<string, unknown> = simulatorPolicyValue();
    delete value.attestation;
    expect(thrownBy(() => parseClientPolicy(value), Error).message).toBe(
      'client policy: attestation: required field is missing (every field is required; a check is turned off explicitly with { "skip": { "reason": "…" } })',
    );
  });

  it("a broker configuration's missing field: what either alternative expects, and that nothing was found", async () => {
    const file = join(dir, "kbs-no-policy.json");
    await writeFile(file, JSON.stringify({ version: 1, keys: [{ keyFile: "k.jwk" }] }), { mode: 0o600 });
    expect((await rejectionOf(loadBrokerConfig(file), Error)).message).toBe(
      "broker config keys.0.policy: expected a client policy file's path or a client policy object, found nothing",
    );
  });

  it("an API key id that breaks the pattern: the pattern, and the id by its length only", async () => {
    const file = join(dir, "api-keys.json");
    const id = "a b";
    const keys = {
      version: 1,
      keys: [{ id, project: "p", sha256: "0".repeat(64), permissions: ["chat"], requestsPerMinute: 60 }],
    };
    await writeFile(file, JSON.stringify(keys));
    const message = (await rejectionOf(loadApiKeys(file), Error)).message;
    expect(message).toBe(
      "--api-keys: keys.0.id: expected a string matching /^[A-Za-z0-9_.-]{1,64}$/, found a string of 3 characters",
    );
  });

  it("a manifest (public): the same expected part, and the value itself", () => {
    const manifest = structuredClone(DEV_MANIFEST) as unknown as {
      inference: { threads: number };
      requestPolicy: { rules: unknown[] };
    };
    manifest.inference.threads = 5000;
    manifest.requestPolicy.rules = [{ id: "r", kind: "nope" }];
    const error = thrownBy(() => parseManifest(manifest), ManifestSchemaError);
    expect(error.issues.map((i) => i.message)).toEqual([
      "manifest field inference.threads: expected a number <= 1024, found 5000",
      'manifest field requestPolicy.rules.0.kind: expected one of "maxPromptTokens", "pattern", "allowModels", "metadataEquals", "requestKind", found "nope"',
    ]);
  });

  it.each([
    [
      "a string too short",
      z.object({ name: z.string().min(2) }),
      { name: "x" },
      "name: expected a string of at least 2 characters, found a string of 1 character",
    ],
    [
      "a string too long",
      z.string().max(3),
      "secret-value",
      "(root): expected a string of at most 3 characters, found a string of 12 characters",
    ],
    [
      "an exact length",
      z.string().length(4),
      "abc",
      "(root): expected a string of exactly 4 characters, found a string of 3 characters",
    ],
    [
      "an empty list",
      z.object({ k: z.array(z.number()).min(1) }),
      { k: [] },
      "k: expected an array of at least 1 item, found an empty array",
    ],
    ["a number not above a bound", z.number().positive(), 0, "(root): expected a number > 0, found 0"],
    ["a literal", z.object({ v: z.literal(1) }), { v: 2 }, "v: expected 1, found 2"],
    [
      "an enum",
      z.enum(["chat", "complete"]),
      "attest",
      '(root): expected one of "chat", "complete", found a string of 6 characters that is none of them',
    ],
    [
      "a wrong type",
      z.object({ on: z.boolean() }),
      { on: "yes" },
      "on: expected boolean, found a string of 3 characters",
    ],
    ["a non-integer", z.int(), 1.5, "(root): expected int, found 1.5"],
    ["a multiple", z.number().multipleOf(5), 3, "(root): expected a multiple of 5, found 3"],
    [
      "a prefix",
      z.string().startsWith("cl"),
      "xy",
      '(root): expected a string starting with "cl", found a string of 2 characters',
    ],
    [
      "a schema's own wording",
      z.string().regex(/^a/, "expected a name starting with a"),
      "b",
      "(root): expected a name starting with a, found a string of 1 character",
    ],
    [
      "an alternative whose type matched: the inner field",
      z.object({ p: z.union([z.string(), z.object({ n: z.number() })]) }),
      { p: { n: "1" } },
      "p.n: expected number, found a string of 1 character",
    ],
    ["no alternative's type", z.union([z.string(), z.number()]), true, "(root): expected string or number, found true"],
    [
      "alternatives of the same type, the fields of one: that one's problem",
      z.union([z.strictObject({ a: z.number() }), z.strictObject({ b: z.number(), c: z.number() })]),
      { b: 1 },
      "c: expected number, found nothing",
    ],
    [
      "alternatives of the same type, the fields of none: each by what it refused, never zod's text",
      z.union([z.strictObject({ a: z.number() }), z.strictObject({ b: z.number() })]),
      { a: 1, b: 2 },
      "(root): expected an object without the field b or an object without the field a, found an object with keys a, b",
    ],
    [
      "a union's own wording",
      z.union([z.strictObject({ a: z.number() }), z.strictObject({ b: z.number() })], {
        error: "expected { a } or { b }",
      }),
      {},
      "(root): expected { a } or { b }, found an empty object",
    ],
    ["an unknown field", z.strictObject({ a: z.number() }), { a: 1, typo: 2 }, "typo: expected no such field, found 2"],
    [
      "a record key",
      z.record(z.string().regex(/^\d+$/, "expected a number"), z.number()),
      { x: 1 },
      '(root): expected keys that are a number, found the key "x"',
    ],
    [
      "a refinement without a message of its own",
      z.object({ a: z.string().refine((v) => v.length > 20) }),
      { a: "short-string" },
      "a: expected a valid value, found a string of 12 characters",
    ],
  ] as const)("%s", (_name, schema, value, message) => {
    expect(formatted(schema, value)).toBe(message);
  });

  it("shows an object's short all-digit keys (PCR indexes), quoted so they do not read as a count", () => {
    // A hand-written azure.pcrs pinning only PCR 7: refused (no OS PCR), the keys it has shown.
    const pcrs = AzurePolicySchema.shape.pcrs;
    expect(formatted(pcrs, { "7": ["ab".repeat(32)] })).toBe(
      '(root): expected at least one of the PCRs the OS is measured into (4, 8, 9, 11) pinned: the guest image is measured only in the vTPM PCRs, found an object with keys "7"',
    );
    const record = z.record(z.string(), z.number()).refine(() => false, "expected PCR 4");
    expect(formatted(record, { "7": 1, "11": 2, "123": 3, a_b: 4 })).toBe(
      '(root): expected PCR 4, found an object with keys "7", "11", "123", a_b',
    );
    // The other rules hold: a longer number, any other key beside it, more than 8 keys.
    const withheld = "(root): expected PCR 4, found an object of 2 fields (names not shown: not plain identifiers)";
    expect(formatted(record, { "7": 1, "1234": 2 })).toBe(withheld);
    expect(formatted(record, { "7": 1, "7 ": 2 })).toBe(withheld);
    expect(formatted(record, { "7": 1, "-1": 2 })).toBe(withheld);
    const many = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [String(i), i]));
    expect(formatted(record, many)).toBe(
      '(root): expected PCR 4, found an object with keys "0", "1", "2", "3", "4", "5", "6", "7", … (10 in all)',
    );
  });

  it("never prints a found string, nor a key that does not look like a field name", () => {
    const secret = "sk-live-0123456789abcdef0123456789abcdef";
    expect(formatted(z.object({ id: z.number() }), { id: secret })).not.toContain(secret);
    expect(formatted(z.object({ id: z.string().max(4) }), { id: secret })).not.toContain(secret);
    expect(formatted(z.record(z.string().max(4), z.number()), { [secret]: 1 })).not.toContain(secret);
    expect(formatted(z.strictObject({}), { [secret]: 1 })).not.toContain(secret);
    // A union's alternative whose first problem is an unknown key of an object inside it: explainIssue
    // follows the union into it and explains that issue itself (zod's own words would name the key).
    const union = z.union([z.strictObject({ inner: z.strictObject({ q: z.number() }), a: z.number() }), z.string()]);
    const message = formatted(union, { inner: { q: 1, [secret]: 1 }, a: "not a number" });
    expect(message).toBe("inner: expected no such field, found 1 (names not shown: not plain identifiers)");
  });
});
