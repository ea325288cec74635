/**
 * What a client policy's manifest section accepts: public keys only (a pasted private key is
 * refused by member name, never shown), kty/crv pairs that exist, model digests in either case (as
 * the attestation section beside it), and messages that say what was wrong with the value found.
 */
import { describe, expect, it } from "vitest";
import { simulatorClientPolicy } from "../../client/dev-policy.ts";
import { type ClientPolicy, parseClientPolicy } from "../../client/policy.ts";
import { thrownBy } from "../helpers/rejections.ts";

const SECRET = "SECRETPRIVATEKEYSECRETPRIVATEKEY";
const OPERATOR = { kty: "OKP", crv: "Ed25519", x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" };
const P256 = {
  kty: "EC",
  crv: "P-256",
  x: "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
  y: "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
};
const base = simulatorClientPolicy({
  tee: "sim-snp",
  measurement: "a".repeat(96),
  operatorKey: OPERATOR,
  modelSha256: "b".repeat(64),
  serviceName: "svc",
});

function withManifest(change: Partial<ClientPolicy["manifest"]>): unknown {
  return { ...structuredClone(base), manifest: { ...structuredClone(base.manifest), ...change } };
}

function refusal(input: unknown): string {
  const error = thrownBy(() => parseClientPolicy(input), Error);
  expect((error as { code?: string }).code).toBe("POLICY_INVALID");
  return error.message;
}

describe("trustedSigners", () => {
  it.each(["d", "p", "q", "dp", "dq", "qi", "k"])(
    "refuses a key with the private member %s, by name, never its value",
    (member) => {
      const message = refusal(withManifest({ trustedSigners: [OPERATOR, { ...P256, [member]: SECRET }] }));
      expect(message).toBe(
        `client policy: manifest.trustedSigners.1.${member}: expected a public key (a private key's "${member}" belongs in no policy: remove it, and keep the private key secret), found a string of ${SECRET.length} characters`,
      );
      expect(message).not.toContain(SECRET);
    },
  );

  it("names a private member with the key's other problems (a key type it has not), never its value", () => {
    const message = refusal(withManifest({ trustedSigners: [{ kty: "RSA", n: "AQAB", d: SECRET }] }));
    expect(message).toContain("manifest.trustedSigners.0.kty: expected one of");
    expect(message).toContain(
      `manifest.trustedSigners.0.d: expected a public key (a private key's "d" belongs in no policy: remove it, and keep the private key secret), found a string of ${SECRET.length} characters`,
    );
    expect(message).not.toContain(SECRET);
  });

  it("refuses kty/crv pairs that do not exist, and an EC key without y", () => {
    expect(refusal(withManifest({ trustedSigners: [{ ...OPERATOR, kty: "EC" }] }))).toBe(
      'client policy: manifest.trustedSigners.0.crv: expected "P-256" with kty "EC" (an Ed25519 key has kty "OKP"), found a string of 7 characters',
    );
    expect(refusal(withManifest({ trustedSigners: [{ ...P256, kty: "OKP" }] }))).toBe(
      'client policy: manifest.trustedSigners.0.crv: expected "Ed25519" with kty "OKP" (a P-256 key has kty "EC"), found a string of 5 characters',
    );
    const { y: _, ...noY } = P256;
    expect(refusal(withManifest({ trustedSigners: [noY] }))).toBe(
      "client policy: manifest.trustedSigners.0.y: expected string, found nothing",
    );
  });

  it("refuses a key whose use, key_ops or alg (RFC 7517 §4.2-4.4) says it never verifies a manifest, naming the member", () => {
    expect(refusal(withManifest({ trustedSigners: [OPERATOR, { ...P256, use: "enc" }] }))).toBe(
      'client policy: manifest.trustedSigners.1.use: expected "sig" (a key for signatures), found a string of 3 characters',
    );
    expect(refusal(withManifest({ trustedSigners: [{ ...OPERATOR, key_ops: ["sign"] }] }))).toBe(
      'client policy: manifest.trustedSigners.0.key_ops: expected an array including "verify", found an array of 1 item',
    );
    expect(refusal(withManifest({ trustedSigners: [{ ...OPERATOR, alg: "ES256" }] }))).toBe(
      'client policy: manifest.trustedSigners.0.alg: expected "EdDSA" (an Ed25519 key signs only EdDSA), found a string of 5 characters',
    );
    // A value that is not a short name may be a pasted secret: described, never shown.
    const message = refusal(withManifest({ trustedSigners: [{ ...P256, alg: SECRET }] }));
    expect(message).toBe(
      `client policy: manifest.trustedSigners.0.alg: expected "ES256" (a P-256 key signs only ES256), found a string of ${SECRET.length} characters`,
    );
    expect(message).not.toContain(SECRET);
  });

  it("accepts keys that say sig, verify and their alg (as manifest keygen writes them)", () => {
    const marked = [
      { ...OPERATOR, alg: "EdDSA", use: "sig", key_ops: ["verify"] },
      { ...P256, alg: "ES256", use: "sig" },
    ];
    expect(parseClientPolicy(withManifest({ trustedSigners: marked })).manifest.trustedSigners).toEqual(marked);
  });

  it("accepts the public keys of both kinds", () => {
    expect(parseClientPolicy(withManifest({ trustedSigners: [OPERATOR, P256] })).manifest.trustedSigners).toEqual([
      OPERATOR,
      P256,
    ]);
  });
});

describe("allowedModelDigests", () => {
  it("takes either case and lower-cases it, as the attestation section's hex fields do", () => {
    const policy = parseClientPolicy(withManifest({ allowedModelDigests: ["B".repeat(64), "c".repeat(64)] }));
    expect(policy.manifest.allowedModelDigests).toEqual(["b".repeat(64), "c".repeat(64)]);
    expect(refusal(withManifest({ allowedModelDigests: ["g".repeat(64)] }))).toBe(
      "client policy: manifest.allowedModelDigests.0: expected 32 bytes as 64 hex digits, found a string of 64 characters",
    );
  });
});

describe("allowedServices", () => {
  it("names both forms when the value has neither's type", () => {
    expect(refusal({ ...base, manifest: { ...base.manifest, allowedServices: 5 } })).toBe(
      'client policy: manifest.allowedServices: expected an allow-list of service names or a skip { "skip": { "reason": "…" } }, found 5',
    );
    expect(refusal({ ...base, manifest: { ...base.manifest, allowedModelDigests: "any" } })).toBe(
      'client policy: manifest.allowedModelDigests: expected an allow-list [32 bytes as 64 hex digits, …] or a skip { "skip": { "reason": "…" } }, found a string of 3 characters',
    );
  });
});

describe("messages say what is wrong with the value found", () => {
  it("an empty array is called one", () => {
    expect(refusal([])).toBe("client policy: (policy): expected object, found an empty array");
    expect(refusal({ ...base, acceptedEvidence: [] })).toBe(
      "client policy: acceptedEvidence: expected an array of at least 1 item, found an empty array",
    );
  });

  it("a value outside an enum: not one of the names, which are listed", () => {
    expect(refusal({ ...base, acceptedEvidence: ["sim"] })).toBe(
      'client policy: acceptedEvidence.0: expected one of "sev-snp", "tdx", "azure-snp", "azure-tdx", found a string of 3 characters that is none of them',
    );
  });
});

describe("every field is required, bounded, and nothing else is taken", () => {
  const at = (path: string[], value: unknown): unknown => {
    const policy = structuredClone(base) as unknown as Record<string, unknown>;
    let parent = policy;
    for (const key of path.slice(0, -1)) parent = parent[key] as Record<string, unknown>;
    const last = path.at(-1) as string;
    if (value === undefined) delete parent[last];
    else parent[last] = value;
    return policy;
  };
  const refused: [string, string[], unknown][] = [
    ["version 2", ["version"], 2],
    ["no version", ["version"], undefined],
    ["maxClockSkewSeconds 0", ["freshness", "maxClockSkewSeconds"], 0],
    ["maxClockSkewSeconds 3601", ["freshness", "maxClockSkewSeconds"], 3601],
    ["maxClockSkewSeconds 1.5", ["freshness", "maxClockSkewSeconds"], 1.5],
    ["no maxClockSkewSeconds", ["freshness", "maxClockSkewSeconds"], undefined],
    ["no trustedSigners", ["manifest", "trustedSigners"], []],
    ["no allowedModelDigests", ["manifest", "allowedModelDigests"], []],
    ["no allowedServices", ["manifest", "allowedServices"], []],
    ["an empty service name", ["manifest", "allowedServices"], [""]],
    ["an empty key x", ["manifest", "trustedSigners"], [{ ...OPERATOR, x: "" }]],
    ["allowedServices absent", ["manifest", "allowedServices"], undefined],
    ["a skip without a reason", ["manifest", "allowedServices"], { skip: {} }],
    ["an unknown top-level field", ["extra"], true],
    ["an unknown manifest field", ["manifest", "extra"], true],
    ["an unknown freshness field", ["freshness", "extra"], true],
  ];
  it.each(refused)("refuses %s (POLICY_INVALID)", (_name, path, value) => {
    expect(refusal(at(path, value))).toMatch(/^client policy: /);
  });

  it("accepts the bounds themselves: maxClockSkewSeconds 1 and 3600", () => {
    for (const seconds of [1, 3600]) {
      const policy = parseClientPolicy(at(["freshness", "maxClockSkewSeconds"], seconds));
      expect(policy.freshness.maxClockSkewSeconds).toBe(seconds);
    }
  });
});

describe("acceptedEvidence names only evidence types the attestation section can accept", () => {
  const azureSection = (snp: unknown, tdx: unknown) => ({
    snp,
    tdx,
    pcrs: { "11": ["c".repeat(64)] },
    secureBootRequired: true,
    consoleAllowed: false,
  });

  it("refuses a type whose section is null, naming the entry, the section and what to do", () => {
    expect(refusal({ ...base, acceptedEvidence: ["sev-snp", "tdx"] })).toBe(
      'client policy: acceptedEvidence.1: "tdx" expected a policy section attestation.tdx, found null (write the section, or take "tdx" out of acceptedEvidence)',
    );
    expect(refusal({ ...base, acceptedEvidence: ["azure-snp"] })).toBe(
      'client policy: acceptedEvidence.0: "azure-snp" expected a policy section attestation.azure.snp, found attestation.azure null (write the section, or take "azure-snp" out of acceptedEvidence)',
    );
  });

  it("refuses an Azure type whose own section inside attestation.azure is null", () => {
    const snp = structuredClone(base.attestation.snp);
    const policy = {
      ...base,
      acceptedEvidence: ["sev-snp", "azure-tdx"],
      attestation: { ...structuredClone(base.attestation), azure: azureSection(snp, null) },
    };
    expect(refusal(policy)).toContain(
      'acceptedEvidence.1: "azure-tdx" expected a policy section attestation.azure.tdx, found null',
    );
  });

  // The file is fixed in one go: this problem is listed with the others, not only once they are gone.
  const TDX_NULL =
    'acceptedEvidence.1: "tdx" expected a policy section attestation.tdx, found null (write the section, or take "tdx" out of acceptedEvidence)';

  it("lists a type whose section is null with the problems of the rest of the file", () => {
    const message = refusal({ ...base, acceptedEvidence: ["sev-snp", "tdx"], freshness: { maxClockSkewSeconds: 0 } });
    expect(message).toMatch(/^client policy: freshness\.maxClockSkewSeconds: /);
    expect(message).toContain(`; ${TDX_NULL}`);
  });

  it("lists it with the attestation section's own problems", () => {
    const attestation = { ...structuredClone(base.attestation), maximumVerificationSkewSeconds: -1 };
    const message = refusal({ ...base, acceptedEvidence: ["sev-snp", "tdx"], attestation });
    expect(message).toContain("attestation.maximumVerificationSkewSeconds: ");
    expect(message).toContain(TDX_NULL);
  });

  it("lists it with an entry that names no evidence type", () => {
    const message = refusal({ ...base, acceptedEvidence: ["sgx", "tdx"] });
    expect(message).toContain("acceptedEvidence.0: ");
    expect(message).toContain(TDX_NULL);
  });

  it("lists it with a maa section", () => {
    const attestation = { ...structuredClone(base.attestation), maa: { any: "section" } };
    const message = refusal({ ...base, acceptedEvidence: ["sev-snp", "tdx"], attestation });
    expect(message).toContain("attestation.maa: expected null or absent, found a policy section");
    expect(message).toContain(TDX_NULL);
  });

  it("accepts a section with no accepted type (acceptedEvidence narrows what the sections allow)", () => {
    const policy = parseClientPolicy({ ...base, acceptedEvidence: ["sev-snp"] });
    expect(policy.acceptedEvidence).toEqual(["sev-snp"]);
  });
});
