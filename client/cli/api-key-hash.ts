/**
 * The hash an API keys file holds for each key (its `sha256` field): `cloister up` writes it for
 * the key it makes (deploy.ts), the host checks keys against it (host/identity.ts). Here, not in
 * host/, so that the measured command line does not import the untrusted host's code; the host
 * imports it from here.
 */
import { hash } from "node:crypto";

/** SHA-256 of `key` (its UTF-8 bytes), lower-case hex. */
export function hashApiKey(key: string): string {
  return hash("sha256", key, "hex");
}
