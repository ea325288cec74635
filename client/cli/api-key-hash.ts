/**
 * The hash an API keys file holds for each key (its `sha256` field): `cloister up` writes it for
 * the key it makes (deploy.ts); the host hashes each key it is sent the same way, with its own
 * one-shot call to a buffer (host/identity.ts's authenticate), and compares the two. Here, not in
 * host/, so that the measured command line does not import the untrusted host's code; the host's
 * tests and bench:e2e write their keys files with it, which pins that the two agree.
 */
import { hash } from "node:crypto";

/** SHA-256 of `key` (its UTF-8 bytes), lower-case hex. */
export function hashApiKey(key: string): string {
  return hash("sha256", key, "hex");
}
