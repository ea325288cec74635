/**
 * Identity: API keys scoped to a project, with permissions and a per-key rate limit. The host
 * stores only SHA-256 hashes of keys (as client/cli/api-key-hash.ts makes them for the keys file)
 * and compares them in constant time. Anonymous requests are refused before anything else happens.
 */
import { hash, timingSafeEqual } from "node:crypto";
import { z } from "zod";
import { TENANT_LABEL_PATTERN } from "../sealed/envelope.ts";
import { forbidden, rateLimited, unauthenticated } from "./errors.ts";

export const PERMISSIONS = ["attest", "chat", "complete"] as const;
export type Permission = (typeof PERMISSIONS)[number];

const apiKeySchema = z.strictObject({
  id: z.string().regex(TENANT_LABEL_PATTERN),
  project: z.string().min(1).max(128),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  permissions: z.array(z.enum(PERMISSIONS)).min(1),
  requestsPerMinute: z.number().int().min(1).max(1_000_000),
});
export const apiKeysFileSchema = z
  .strictObject({ version: z.literal(1), keys: z.array(apiKeySchema).min(1) })
  .superRefine((file, ctx) => {
    // Each key its own id (its rate bucket, its in-flight share, its name in the access log and in
    // the enclave's audit records) and its own secret (else the first entry's permissions would
    // silently win). The hash is never shown: it identifies the key.
    const ids = new Map<string, number>();
    const hashes = new Map<string, number>();
    for (const [i, key] of file.keys.entries()) {
      const sameId = ids.get(key.id);
      if (sameId !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["keys", i, "id"],
          message: `expected an id no other key has ("${key.id}" is keys.${sameId}'s)`,
        });
      }
      const sameHash = hashes.get(key.sha256);
      if (sameHash !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["keys", i, "sha256"],
          message: `expected the hash of a key no other entry has (keys.${sameHash} has this one: one key listed twice)`,
        });
      }
      ids.set(key.id, ids.get(key.id) ?? i);
      hashes.set(key.sha256, hashes.get(key.sha256) ?? i);
    }
  });

export type ApiKeyRecord = z.infer<typeof apiKeySchema>;
export type ApiKeysFile = z.infer<typeof apiKeysFileSchema>;

export interface Caller {
  readonly keyId: string;
  readonly project: string;
}

interface Bucket {
  tokens: number;
  updatedMs: number;
}

export class ApiKeyStore {
  private readonly records: readonly (ApiKeyRecord & { digest: Buffer })[];
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    file: ApiKeysFile,
    // A monotonic clock: a wall clock stepped back would refuse a key with tokens left.
    private readonly now: () => number = () => performance.now(),
  ) {
    this.records = file.keys.map((r) => ({ ...r, digest: Buffer.from(r.sha256, "hex") }));
  }

  /** Resolves the Authorization header to a caller, or throws UNAUTHENTICATED. */
  authenticate(authorization: string | undefined): ApiKeyRecord {
    const match = /^Bearer ([\x21-\x7e]{16,256})$/i.exec(authorization ?? "");
    if (match === null) throw unauthenticated();
    // One-shot (no Hash object per request): in the host, at the start of 64 requests at once, it
    // took 9-12 µs a request against 15-20 µs for createHash().update().digest() (medians).
    const digest = hash("sha256", match[1] as string, "buffer");
    let found: ApiKeyRecord | undefined;
    // Compare against every record so the time taken does not depend on which key matched.
    for (const record of this.records) {
      if (timingSafeEqual(record.digest, digest) && found === undefined) found = record;
    }
    if (found === undefined) throw unauthenticated();
    return found;
  }

  authorize(record: ApiKeyRecord, permission: Permission): Caller {
    this.admit(record, [permission]);
    return this.permit(record, permission);
  }

  /**
   * Before a request's body is read: the key must hold one of `permissions` (FORBIDDEN naming
   * them), and takes its rate token now (RATE_LIMITED), so that a key without the permission or
   * past its rate cannot make the host buffer bodies. `permit` then checks the exact permission.
   */
  admit(record: ApiKeyRecord, permissions: readonly Permission[]): void {
    if (!permissions.some((p) => record.permissions.includes(p))) throw forbidden(permissions.join(" or "));
    this.take(record);
  }

  /**
   * The exact permission, once the body says what the request is; its token was taken by `admit`
   * and is kept when this refuses: the host has read the body by then, and a refund would let a
   * key without the permission send bodies past its rate.
   */
  permit(record: ApiKeyRecord, permission: Permission): Caller {
    if (!record.permissions.includes(permission)) throw forbidden(permission);
    return { keyId: record.id, project: record.project };
  }

  /**
   * Gives back the token `authorize` or `admit` took, for a request the host refused before
   * forwarding it for a reason of its own (busy, an enclave gone), not for one the caller chose.
   */
  refund(record: ApiKeyRecord): void {
    const bucket = this.buckets.get(record.id);
    if (bucket !== undefined) bucket.tokens = Math.min(record.requestsPerMinute, bucket.tokens + 1);
  }

  /** Token bucket: `requestsPerMinute` per key, bursts up to the same number. */
  private take(record: ApiKeyRecord): void {
    const now = this.now();
    const capacity = record.requestsPerMinute;
    const bucket = this.buckets.get(record.id) ?? { tokens: capacity, updatedMs: now };
    // performance.now() never steps back, an injected clock may: a step back then takes no tokens.
    const elapsedMs = Math.max(0, now - bucket.updatedMs);
    bucket.tokens = Math.min(capacity, bucket.tokens + (elapsedMs * capacity) / 60_000);
    bucket.updatedMs = now;
    if (bucket.tokens < 1) {
      this.buckets.set(record.id, bucket);
      throw rateLimited(Math.max(1, Math.ceil(((1 - bucket.tokens) * 60_000) / capacity / 1000)));
    }
    bucket.tokens -= 1;
    this.buckets.set(record.id, bucket);
  }
}
