/**
 * `cloister model seal`'s refusals of its --key file (attestation/kbs/cli-impl.ts runModelSeal) keep
 * the error they were found with as their cause: the file reader's (cannot read, mode) and the key's
 * parse (a member named twice, a key that is no JWK), so a caller can tell them apart by more than a
 * message. In process.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DuplicateMemberError } from "../../attestation/json-text.ts";
import { runModelSeal } from "../../attestation/kbs/cli-impl.ts";
import { UsageError } from "../../client/cli/output.ts";
import { SealedModelError } from "../../models/sealed.ts";
import { testDirectory } from "../helpers/test-directory.ts";

const dir = await testDirectory("cloister-kbs-seal-cause-");

/** runModelSeal's refusal of the key file `key` (nothing is sealed: the key is read first). */
function sealRefusal(key: string): Promise<unknown> {
  return runModelSeal(join(dir, "model.gguf"), join(dir, "model.sealed"), { key }).then(
    () => null,
    (error: unknown) => error,
  );
}

describe("cloister model seal: a --key refusal keeps its cause", () => {
  it("a key file that cannot be read: USAGE, the reader's error as its cause", async () => {
    const error = await sealRefusal(join(dir, "missing.jwk"));
    expect(error).toBeInstanceOf(UsageError);
    expect((error as Error).message).toContain("--key");
    expect((error as Error).cause).toBeInstanceOf(Error);
  });

  it("a key file naming a member twice, or no JWK: USAGE, the parse's error as its cause", async () => {
    const twice = join(dir, "twice.jwk");
    await writeFile(twice, '{"kty":"oct","kty":"oct"}', { mode: 0o600 });
    const twiceError = await sealRefusal(twice);
    expect(twiceError).toBeInstanceOf(UsageError);
    expect((twiceError as Error).cause).toBeInstanceOf(DuplicateMemberError);
    const notJwk = join(dir, "not-jwk.jwk");
    await writeFile(notJwk, '{"kty":"RSA"}', { mode: 0o600 });
    const notJwkError = await sealRefusal(notJwk);
    expect(notJwkError).toBeInstanceOf(UsageError);
    expect((notJwkError as Error).cause).toBeInstanceOf(SealedModelError);
  });
});
