/**
 * The audit writer signs with Node's native Ed25519 when it can; Ed25519 is deterministic, so its
 * signatures must be byte-for-byte tweetnacl's (other runtimes sign and verify with tweetnacl),
 * and a key whose stored public half does not match its seed must still sign exactly as tweetnacl
 * does. The verifier, native on Node too, must give tweetnacl's verdicts, less the signatures with
 * an unreduced S that only tweetnacl accepts.
 */
import nacl from "tweetnacl";
import { describe, expect, it, vi } from "vitest";
import { ed25519Signer, ed25519Verifier, verifyAuditLog } from "../../enclave/pipeline/audit.ts";
import { seededRandom } from "../sealed/helpers.ts";
import { makeWriter, sampleEntries, seededKeyPair } from "./helpers.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("ed25519Signer", () => {
  it("gives tweetnacl's sign.detached bytes for 64 random keys and messages (0..2000 bytes)", () => {
    const random = seededRandom(77);
    for (let i = 0; i < 64; i++) {
      const keys = nacl.sign.keyPair.fromSeed(random(32));
      const message = random((i * 37) % 2001);
      const signature = ed25519Signer(keys.secretKey)(message);
      expect(hex(signature)).toBe(hex(nacl.sign.detached(message, keys.secretKey)));
      expect(nacl.sign.detached.verify(message, signature, keys.publicKey)).toBe(true);
    }
  });

  it("signs as tweetnacl when the stored public half is not the seed's (tweetnacl hashes the stored half)", () => {
    const random = seededRandom(5);
    const a = nacl.sign.keyPair.fromSeed(random(32));
    const b = nacl.sign.keyPair.fromSeed(random(32));
    const mixed = new Uint8Array(64);
    mixed.set(a.secretKey.subarray(0, 32), 0);
    mixed.set(b.publicKey, 32);
    const message = random(100);
    expect(hex(ed25519Signer(mixed)(message))).toBe(hex(nacl.sign.detached(message, mixed)));
  });

  it("is not affected by later changes to the caller's key array", () => {
    const keys = seededKeyPair(3);
    const secret = keys.secretKey.slice();
    const sign = ed25519Signer(secret);
    secret.fill(0);
    const message = new Uint8Array([1, 2, 3]);
    expect(hex(sign(message))).toBe(hex(nacl.sign.detached(message, keys.secretKey)));
  });
});

describe("AuditWriter with the native signer", () => {
  it("writes the same lines as tweetnacl signing would, and they verify", () => {
    const keys = seededKeyPair(7);
    const writer = makeWriter(keys);
    const lines = sampleEntries(8).map((e) => writer.record(e).line);
    for (const line of lines) {
      const { record, sig } = JSON.parse(line) as { record: unknown; sig: string };
      expect(sig).toMatch(/^[0-9a-f]{128}$/);
      const canonicalRecord = line.slice(line.indexOf(":") + 1, line.lastIndexOf(',"sig"'));
      const message = new TextEncoder().encode(`cloister/audit/record/v1\0${canonicalRecord}`);
      expect(sig).toBe(hex(nacl.sign.detached(message, keys.secretKey)));
      expect(record).toBeTypeOf("object");
    }
    expect(verifyAuditLog(lines, keys.publicKey).ok).toBe(true);
  });
});

describe("ed25519Verifier (audit verify, audit find, checkpoints)", () => {
  /** S + L: the same signature with its scalar not reduced, which tweetnacl still accepts. */
  function unreduced(signature: Uint8Array): Uint8Array {
    const L = Buffer.from(`edd3f55c1a631258d69cf7a2def9de14${"00".repeat(15)}10`, "hex");
    const out = new Uint8Array(signature);
    let carry = 0;
    for (let i = 0; i < 32; i++) {
      const sum = (out[32 + i] as number) + (L[i] as number) + carry;
      out[32 + i] = sum & 0xff;
      carry = sum >> 8;
    }
    return out;
  }

  it("agrees with tweetnacl on valid, altered and foreign signatures of 64 random keys and messages", () => {
    const random = seededRandom(91);
    for (let i = 0; i < 64; i++) {
      const keys = nacl.sign.keyPair.fromSeed(random(32));
      const message = random((i * 53) % 1500);
      const signature = nacl.sign.detached(message, keys.secretKey);
      const verify = ed25519Verifier(keys.publicKey);
      const altered = new Uint8Array(signature);
      altered[i % 64] = (altered[i % 64] as number) ^ (1 << (i % 8));
      const foreign = nacl.sign.detached(message, nacl.sign.keyPair.fromSeed(random(32)).secretKey);
      for (const [candidate, expected] of [
        [signature, true],
        [altered, false],
        [foreign, false],
      ] as const) {
        expect(nacl.sign.detached.verify(message, candidate, keys.publicKey)).toBe(expected);
        expect(verify(message, candidate)).toBe(expected);
      }
    }
  });

  it("refuses a signature whose S is not reduced, which tweetnacl alone would accept", () => {
    const keys = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(5));
    const message = new TextEncoder().encode("a record");
    const malleated = unreduced(nacl.sign.detached(message, keys.secretKey));
    expect(nacl.sign.detached.verify(message, malleated, keys.publicKey)).toBe(true);
    expect(ed25519Verifier(keys.publicKey)(message, malleated)).toBe(false);
  });

  it("where Node's crypto is missing (tweetnacl alone), still refuses an unreduced S", async () => {
    const process_ = process as { getBuiltinModule: ((id: string) => unknown) | undefined };
    const original = process_.getBuiltinModule;
    vi.resetModules();
    process_.getBuiltinModule = (id: string) => (id === "node:crypto" ? undefined : original?.(id));
    try {
      const { ed25519Verifier: tweetnaclVerifier } = await import("../../enclave/pipeline/audit.ts");
      const keys = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(6));
      const message = new TextEncoder().encode("a record");
      const signature = nacl.sign.detached(message, keys.secretKey);
      const malleated = unreduced(signature);
      expect(nacl.sign.detached.verify(message, malleated, keys.publicKey)).toBe(true);
      const verify = tweetnaclVerifier(keys.publicKey);
      expect(verify(message, signature)).toBe(true);
      expect(verify(message, malleated)).toBe(false);
    } finally {
      process_.getBuiltinModule = original;
      vi.resetModules();
    }
  });

  it("refuses a small-order enclave key (any signature could be made for it) as AUDIT_KEY_INVALID", () => {
    const identity = new Uint8Array(32);
    identity[0] = 1; // the neutral point: y = 1
    expect(() => verifyAuditLog([], identity)).toThrow(
      expect.objectContaining({ message: expect.stringContaining("found a small-order point") }),
    );
  });
});
