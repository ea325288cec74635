import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { hashApiKey } from "../../client/cli/api-key-hash.ts";
import { type ApiKeyRecord, ApiKeyStore } from "../../host/identity.ts";
import { loadApiKeys } from "../../host/run.ts";
import { testDirectory } from "../helpers/test-directory.ts";

const key = (id: string, secret: string, requestsPerMinute = 60): ApiKeyRecord => ({
  id,
  project: `project-${id}`,
  sha256: hashApiKey(secret),
  permissions: ["attest", "chat"],
  requestsPerMinute,
});

const dir = await testDirectory("cloister-identity-");

describe("the API-keys file", () => {
  const load = async (keys: ApiKeyRecord[]) => {
    const file = join(dir, `keys-${keys.map((k) => k.id).join("-")}.json`);
    await writeFile(file, JSON.stringify({ version: 1, keys }), { mode: 0o600 });
    return loadApiKeys(file);
  };

  it("refuses two keys with one id (one rate bucket, one name in the logs for two projects)", async () => {
    await expect(
      load([key("team-a", "ck_first_0123456789"), key("team-a", "ck_second_0123456789")]),
    ).rejects.toMatchObject({
      message:
        '--api-keys: keys.1.id: expected an id no other key has ("team-a" is keys.0\'s), found a string of 6 characters',
    });
  });

  it("refuses one key listed twice (the second entry's permissions would be ignored), never showing its hash", async () => {
    const error = (await load([key("team-a", "ck_same_0123456789"), key("team-b", "ck_same_0123456789")]).catch(
      (e: Error) => e,
    )) as Error;
    expect(error.message).toBe(
      "--api-keys: keys.1.sha256: expected the hash of a key no other entry has (keys.0 has this one: one key listed twice), found a string of 64 characters",
    );
    expect(error.message).not.toContain(hashApiKey("ck_same_0123456789"));
  });

  it("refuses a key that could make no request, a file without keys, and a field it does not know", async () => {
    const valid = key("team-a", "ck_first_0123456789");
    for (const [keys, message] of [
      [[{ ...valid, requestsPerMinute: 0 }], "keys.0.requestsPerMinute: expected a number >= 1, found 0"],
      [
        [{ ...valid, permissions: [] }],
        "keys.0.permissions: expected an array of at least 1 item, found an empty array",
      ],
      [[], "keys: expected an array of at least 1 item, found an empty array"],
      // A misspelt field would otherwise be dropped silently.
      [[{ ...valid, requestsPerMinuet: 5 }], "keys.0.requestsPerMinuet: expected no such field, found 5"],
    ] as const) {
      await expect(load(keys as unknown as ApiKeyRecord[]), message).rejects.toMatchObject({
        message: `--api-keys: ${message}`,
      });
    }
  });

  it("refuses a file that names a member twice (the second would silently replace the first)", async () => {
    const file = join(dir, "keys-twice.json");
    const keys = JSON.stringify([key("team-a", "ck_first_0123456789")]);
    await writeFile(file, `{"version": 1, "keys": ${keys}, "keys": []}`, { mode: 0o600 });
    await expect(loadApiKeys(file)).rejects.toMatchObject({
      message: `--api-keys ${file}: keys appears twice in one object (the second at position ${keys.length + 25}): expected each member once (JSON.parse would use the last while a reader sees the first); remove one`,
    });
  });

  it("refuses a file that is not JSON, saying where it goes wrong, never what it holds", async () => {
    const file = join(dir, "keys-cut.json");
    const text = '{"version": 1, "keys": [{"sha256": "ck_secret_0123456789"';
    await writeFile(file, text, { mode: 0o600 });
    await expect(loadApiKeys(file)).rejects.toMatchObject({
      message: `--api-keys ${file}: expected a JSON object of API keys, found text that is not valid JSON (at position ${text.length})`,
    });
  });

  it("loads distinct keys", async () => {
    const store = await load([key("team-a", "ck_first_0123456789"), key("team-b", "ck_second_0123456789")]);
    expect(store.authenticate("Bearer ck_second_0123456789").id).toBe("team-b");
  });
});

describe("the per-key rate limit", () => {
  it("a clock that steps back refuses no key with tokens left", () => {
    let now = 10_000_000;
    const record = key("team-a", "ck_first_0123456789", 60);
    const store = new ApiKeyStore({ version: 1, keys: [record] }, () => now);
    store.admit(record, ["chat"]);
    now -= 3_600_000;
    // 59 tokens left: the next request is admitted, not refused for an hour.
    expect(() => store.admit(record, ["chat"])).not.toThrow();
    for (let i = 0; i < 58; i++) store.admit(record, ["chat"]);
    expect(() => store.admit(record, ["chat"])).toThrow(
      expect.objectContaining({ code: "RATE_LIMITED", retryAfterSeconds: 1 }),
    );
  });

  /** Admits `record` until refused; the number admitted. The clock does not move meanwhile. */
  const admitted = (store: ApiKeyStore, record: ApiKeyRecord) => {
    for (let n = 0; n < 1000; n++) {
      try {
        store.admit(record, ["chat"]);
      } catch (error) {
        expect(error).toMatchObject({ code: "RATE_LIMITED" });
        return n;
      }
    }
    throw new Error("admitted 1000 requests: no rate limit");
  };

  it("an idle key builds up no more than its burst (requestsPerMinute), however long it idles", () => {
    let now = 10_000_000;
    const record = key("team-a", "ck_first_0123456789", 5);
    const store = new ApiKeyStore({ version: 1, keys: [record] }, () => now);
    expect(admitted(store, record)).toBe(5);
    now += 12_000; // one token back (5 a minute)
    expect(admitted(store, record)).toBe(1);
    for (const idleMs of [60_000, 10 * 60_000, 24 * 3_600_000]) {
      now += idleMs;
      expect(admitted(store, record)).toBe(5);
    }
  });

  it("a refund never raises a key above its burst", () => {
    const now = 10_000_000;
    const record = key("team-a", "ck_first_0123456789", 5);
    const store = new ApiKeyStore({ version: 1, keys: [record] }, () => now);
    store.admit(record, ["chat"]);
    // One token was taken; three refunds (a host busy three times, say) give back only that one.
    for (let i = 0; i < 3; i++) store.refund(record);
    expect(admitted(store, record)).toBe(5);
    // Refunds on an empty bucket give back one token each, up to the burst again.
    store.refund(record);
    store.refund(record);
    expect(admitted(store, record)).toBe(2);
    for (let i = 0; i < 8; i++) store.refund(record);
    expect(admitted(store, record)).toBe(5);
  });
});

describe("the Authorization header", () => {
  // Each key's hash is in the file: only the header's form can refuse it.
  const secrets = {
    short: "ck_short_012345", // 15 characters
    least: "ck_least_0123456", // 16
    spaced: "ck_has space_0123456",
    tabbed: "ck_has\ttab_0123456",
    longest: `ck_${"x".repeat(253)}`, // 256
    tooLong: `ck_${"x".repeat(254)}`, // 257
  };
  const records = Object.entries(secrets).map(([id, secret]) => key(id, secret));
  const store = new ApiKeyStore({ version: 1, keys: records });

  it("takes a key of 16 to 256 printable characters without spaces", () => {
    expect([secrets.short.length, secrets.least.length, secrets.longest.length, secrets.tooLong.length]).toEqual([
      15, 16, 256, 257,
    ]);
    expect(store.authenticate(`Bearer ${secrets.least}`).id).toBe("least");
    expect(store.authenticate(`bearer ${secrets.longest}`).id).toBe("longest");
    for (const secret of [secrets.short, secrets.spaced, secrets.tabbed, secrets.tooLong]) {
      expect(() => store.authenticate(`Bearer ${secret}`), secret.slice(0, 12)).toThrow(
        expect.objectContaining({ code: "UNAUTHENTICATED" }),
      );
    }
  });

  it("matches a key by the SHA-256 of its text as an operator computes it (printf %s KEY | sha256sum)", () => {
    // A fixed vector, not hashApiKey on both sides: the file's hashes are made outside the host.
    const sha256 = "8d7f91bb8a3740d1a57b93f45462956e5ecf0155bb4dc85a0dfd84e4d0a3a1b4";
    expect(hashApiKey("ck_vector_0123456789")).toBe(sha256);
    const vector = new ApiKeyStore({ version: 1, keys: [{ ...key("vector", "unused_0123456789"), sha256 }] });
    expect(vector.authenticate("Bearer ck_vector_0123456789").id).toBe("vector");
    expect(() => vector.authenticate("Bearer ck_vector_0123456788")).toThrow(
      expect.objectContaining({ code: "UNAUTHENTICATED" }),
    );
  });
});
