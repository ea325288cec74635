/**
 * Configuration text that is not JSON (a policy, a manifest, a key file): no error keeps V8's
 * SyntaxError, whose message quotes the text, so a pasted secret shows nowhere the error is
 * inspected (util.inspect prints causes).
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { inspect } from "node:util";
import { CompactSign } from "jose";
import { describe, expect, it } from "vitest";
import { DuplicateMemberError, parseJsonText } from "../../attestation/json-text.ts";
import { parseAttestationPolicy } from "../../attestation/policy.ts";
import { readPolicyOption } from "../../attestation/verify-evidence-cli.ts";
import { readPolicyFile } from "../../client/cli/run-client.ts";
import { parseClientPolicy } from "../../client/policy.ts";
import { checkCommand, verifyCommand } from "../../manifests/cli-impl.ts";
import { generateManifestSigningKey, MANIFEST_JWS_TYP, verifyManifest } from "../../manifests/sign.ts";
import { rejectionOf } from "../helpers/rejections.ts";
import { testDirectory } from "../helpers/test-directory.ts";

const SECRET = "sk-live-SECRET-4f9a";
/** V8: `Unexpected token 's', "{"apiKey": sk-live-SE"... is not valid JSON` (no position). */
const QUOTED = `{"apiKey": ${SECRET}}`;
/** V8: `Expected ',' or '}' after property value in JSON at position 33`. */
const POSITIONED = `{"apiKey": "${SECRET}" "more": 1}`;

const dir = await testDirectory("cloister-json-text-");

async function file(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

/** The error `run` throws, inspected as a log would (causes included). */
async function inspected(run: () => unknown): Promise<{ error: Error; text: string }> {
  const error = await rejectionOf(run, Error);
  return { error, text: inspect(error, { depth: 10 }) };
}

describe("parseJsonText", () => {
  it("says where the text is not JSON, never what it holds (V8's SyntaxError quotes it)", async () => {
    // What the fix is for: V8's own error carries the secret.
    expect(inspect((await inspected(() => JSON.parse(QUOTED))).error)).toContain("sk-live");
    const quoted = await inspected(() => parseJsonText(QUOTED));
    expect(quoted.error).toBeInstanceOf(SyntaxError);
    expect(quoted.error.message).toBe("not valid JSON");
    expect(quoted.error.cause).toBeUndefined();
    expect(quoted.text).not.toContain("sk-live");
    expect((await inspected(() => parseJsonText(POSITIONED))).error.message).toBe("not valid JSON (at position 33)");
    expect((await inspected(() => parseJsonText("["))).error.message).toBe("not valid JSON (it ends early)");
    expect(parseJsonText('{"a": [1]}')).toEqual({ a: [1] });
  });

  it("takes a position only from V8's own words, not from the text it quotes", async () => {
    // V8 names no position here and quotes the text, which itself reads "at position 12".
    expect((await inspected(() => JSON.parse("at position 12"))).error.message).toContain("at position 12");
    expect((await inspected(() => parseJsonText("at position 12"))).error.message).toBe("not valid JSON");
    expect((await inspected(() => parseJsonText('{"a":1} x'))).error.message).toBe("not valid JSON (at position 8)");
  });
});

describe("every path that parses configuration JSON keeps no quoting cause", () => {
  it("attestation policy (parseAttestationPolicy)", async () => {
    for (const [text, message] of [
      [QUOTED, "attestation policy: not valid JSON"],
      [POSITIONED, "attestation policy: not valid JSON (at position 33)"],
    ] as const) {
      const { error, text: shown } = await inspected(() => parseAttestationPolicy(text));
      expect([(error as { code?: string }).code, error.message]).toEqual(["POLICY_INVALID", message]);
      expect(shown).not.toContain("sk-live");
    }
  });

  it("client policy (parseClientPolicy), and --policy of the client commands, which still hints at a wrong file", async () => {
    const { error, text } = await inspected(() => parseClientPolicy(QUOTED));
    expect([(error as { code?: string }).code, error.message]).toEqual([
      "POLICY_INVALID",
      "client policy: not valid JSON",
    ]);
    expect(text).not.toContain("sk-live");
    const path = await file("client-policy.json", POSITIONED);
    const cli = await inspected(() => readPolicyFile(path));
    expect(cli.error.message).toBe(
      `--policy ${path}: client policy: not valid JSON (at position 33) (expected a client policy: cloister up writes .cloister/policy.json, cloister policy init makes one)`,
    );
    expect(cli.text).not.toContain("sk-live");
  });

  it("verify-evidence --policy (readPolicyOption)", async () => {
    const path = await file("policy.json", QUOTED);
    const { error, text } = await inspected(() => readPolicyOption(path, "tdx"));
    expect(error.message).toBe(`--policy ${path}: expected a JSON policy, found text that is not valid JSON`);
    expect(text).not.toContain("sk-live");
  });

  it("manifest files and key files of cloister manifest", async () => {
    const manifest = await file("manifest.json", QUOTED);
    const check = await inspected(() => checkCommand(manifest, { json: true }));
    expect(check.error.message).toBe(`manifest ${manifest}: expected JSON, found text that is not valid JSON`);
    expect(check.text).not.toContain("sk-live");
    // A private JWK with a typo: its "d" must not show.
    const key = await file("key.jwk", `{"kty":"OKP","crv":"Ed25519","d":${SECRET}}`);
    const verify = await inspected(() => verifyCommand(manifest, { key: [key], json: true }));
    expect(verify.error.message).toBe(`--key ${key}: expected a JWK, found text that is not valid JSON`);
    expect(verify.text).not.toContain("sk-live");
  });

  it("a signed manifest whose payload is not JSON (verifyManifest)", async () => {
    const { privateJwk, publicJwk } = await generateManifestSigningKey("EdDSA");
    const { importJWK } = await import("jose");
    const jws = await new CompactSign(new TextEncoder().encode(QUOTED))
      .setProtectedHeader({ alg: "EdDSA", typ: MANIFEST_JWS_TYP })
      .sign(await importJWK(privateJwk, "EdDSA"));
    const { error, text } = await inspected(() => verifyManifest(jws, [publicJwk]));
    expect(error.message).toBe("manifest payload: expected UTF-8 JSON, found text that is not valid JSON");
    expect(text).not.toContain("sk-live");
  });
});

describe("DuplicateMemberError", () => {
  it("keeps no member name on the error, so a cause printed with util.inspect shows none", () => {
    const secret = "sk-live-0123456789abcdef SECRET";
    const error = (() => {
      try {
        parseJsonText(`{"${secret}":1,"${secret}":2}`);
      } catch (e) {
        return e;
      }
      throw new Error("expected a refusal");
    })();
    expect(error).toBeInstanceOf(DuplicateMemberError);
    expect(inspect(new Error("wrapped", { cause: error }), { depth: 5 })).not.toContain("sk-live");
  });
});
