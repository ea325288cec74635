/**
 * What the policy parsers return cannot change in place: parseAttestationPolicy's and
 * parseClientPolicy's values are deep-frozen copies (the verifiers recognise them as parsed without
 * comparing their JSON on every call), and the input they were given is left as it was.
 */
import { describe, expect, it } from "vitest";
import { parseAttestationPolicy, parsedAttestationPolicy, registeredParser } from "../../attestation/policy.ts";
import { simulatorClientPolicy } from "../../client/dev-policy.ts";
import { manifestCheckForPolicy, parseClientPolicy } from "../../client/policy.ts";

const OPERATOR = { kty: "OKP", crv: "Ed25519", x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" };

function given() {
  const policy = simulatorClientPolicy({
    tee: "sim-snp",
    measurement: "a".repeat(96),
    operatorKey: OPERATOR,
    modelSha256: "b".repeat(64),
    serviceName: "svc",
  });
  // A member the JWK schema does not name (kept, as loose objects keep theirs), holding an array.
  const signer = { ...OPERATOR, key_ops: ["verify"], x5c: ["MIIB"] };
  return structuredClone({ ...policy, manifest: { ...policy.manifest, trustedSigners: [signer] } });
}

/** Every object and array reachable from `value`, with its path. */
function objectsIn(value: unknown, path = "(policy)"): [string, object][] {
  if (typeof value !== "object" || value === null) return [];
  return [[path, value], ...Object.entries(value).flatMap(([key, v]) => objectsIn(v, `${path}.${key}`))];
}

describe("parsed policies", () => {
  it("parseClientPolicy returns a deep-frozen value: a field assigned in place throws", () => {
    const parsed = parseClientPolicy(given());
    const unfrozen = objectsIn(parsed).filter(([, o]) => !Object.isFrozen(o));
    expect(unfrozen.map(([path]) => path)).toEqual([]);
    expect(objectsIn(parsed).length).toBeGreaterThan(20);
    expect(() => {
      (parsed.attestation.snp as { minimumGuestSvn: number }).minimumGuestSvn = 7;
    }).toThrow(TypeError);
    expect(() => (parsed.manifest.trustedSigners[0] as { x5c: string[] }).x5c.push("more")).toThrow(TypeError);
  });

  it("parseAttestationPolicy returns a deep-frozen value, from JSON text too", () => {
    const input = given().attestation;
    for (const parsed of [parseAttestationPolicy(input), parseAttestationPolicy(JSON.stringify(input))]) {
      expect(objectsIn(parsed).filter(([, o]) => !Object.isFrozen(o))).toEqual([]);
      expect(() => {
        (parsed as { trustSimulator: boolean }).trustSimulator = false;
      }).toThrow(TypeError);
    }
  });

  it("leaves the input as it was: nothing of it frozen, nothing shared with the parsed value", () => {
    const input = given();
    const before = structuredClone(input);
    const parsed = parseClientPolicy(input);
    expect(objectsIn(input).filter(([, o]) => Object.isFrozen(o))).toEqual([]);
    expect(input).toEqual(before);
    input.manifest.trustedSigners[0]?.x5c.push("changed");
    expect(parsed.manifest.trustedSigners[0]).toMatchObject({ x5c: ["MIIB"] });
  });

  it("takes as parsed only what the policy's own parser returned: another parser's frozen value is parsed", () => {
    const lacking = { version: 1, trustSimulator: false };
    const marked = registeredParser((_: unknown) => lacking)(null);
    expect(Object.isFrozen(marked)).toBe(true);
    expect(() => parsedAttestationPolicy(marked)).toThrow(/POLICY_INVALID|attestation policy:/);
    const parsed = parseAttestationPolicy(given().attestation);
    expect(parsedAttestationPolicy(parsed)).toBe(parsed);
  });

  it("makes one manifest check per parsed policy (its identity is not rebuilt per verification), frozen", () => {
    const parsed = parseClientPolicy(given());
    const check = manifestCheckForPolicy(parsed);
    expect(manifestCheckForPolicy(parsed)).toBe(check);
    expect(Object.isFrozen(check)).toBe(true);
    expect(check.identity).toBe(JSON.stringify(parsed.manifest));
  });
});
