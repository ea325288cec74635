/**
 * INSECURE, deterministic byte stream for the attestation simulator: every simulated key is
 * derived from a public seed string, so anyone who knows the seed can forge simulated evidence.
 * That is the point (the simulator root is a well-known test root) and the reason simulated
 * evidence is accepted only when a policy opts in with `trustSimulator: true`.
 *
 * Construction: HMAC-SHA-512 in counter mode, keyed by SHA-512(seed ‖ 0x00 ‖ label). A different
 * label gives an independent stream, so each key of a hierarchy has its own.
 */
import { hmac } from "@noble/hashes/hmac.js";
import { sha512 } from "@noble/hashes/sha2.js";

const encoder = new TextEncoder();

export class InsecureSeededDrbg {
  private readonly key: Uint8Array;
  private counter = 0;
  private buffer = new Uint8Array(0);
  private offset = 0;

  constructor(seed: string, label: string) {
    const s = encoder.encode(seed);
    const l = encoder.encode(label);
    const input = new Uint8Array(s.length + 1 + l.length);
    input.set(s, 0);
    input.set(l, s.length + 1);
    this.key = sha512(input);
  }

  bytes(length: number): Uint8Array {
    const out = new Uint8Array(length);
    let filled = 0;
    while (filled < length) {
      if (this.offset === this.buffer.length) {
        const block = new Uint8Array(8);
        new DataView(block.buffer).setBigUint64(0, BigInt(this.counter++));
        this.buffer = hmac(sha512, this.key, block);
        this.offset = 0;
      }
      const take = Math.min(length - filled, this.buffer.length - this.offset);
      out.set(this.buffer.subarray(this.offset, this.offset + take), filled);
      this.offset += take;
      filled += take;
    }
    return out;
  }
}
