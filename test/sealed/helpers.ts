/** Deterministic helpers for the sealed-protocol tests. */
import type { EnclaveSealingKey } from "../../sealed/index.ts";
import { enclaveSealingKeyFromSecretKey, SealedError } from "../../sealed/index.ts";
import { rejectionOf } from "../helpers/rejections.ts";

/** A seeded byte generator (xorshift32): reproducible keys, nonces and request ids. Tests only. */
export function seededRandom(seed: number): (length: number) => Uint8Array {
  let state = seed >>> 0 || 1;
  return (length: number) => {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) {
      state ^= state << 13;
      state >>>= 0;
      state ^= state >>> 17;
      state ^= state << 5;
      state >>>= 0;
      out[i] = state & 0xff;
    }
    return out;
  };
}

export async function enclaveKeyFromSeed(seed: number): Promise<EnclaveSealingKey> {
  return enclaveSealingKeyFromSecretKey(seededRandom(seed)(32));
}

/** Runs `fn` and returns the SealedError it throws (failing the test when it throws none). */
export function sealedErrorOf(fn: () => unknown): Promise<SealedError> {
  return rejectionOf(fn, SealedError);
}

export const T0 = Date.UTC(2025, 0, 15, 12, 0, 0);
