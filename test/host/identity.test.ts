import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiKeyRecord, ApiKeyStore, hashApiKey } from "../../host/identity.ts";
import { loadApiKeys } from "../../host/run.ts";

const key = (id: string, secret: string, requestsPerMinute = 60): ApiKeyRecord => ({
  id,
  project: `project-${id}`,
  sha256: hashApiKey(secret),
  permissions: ["attest", "chat"],
  requestsPerMinute,
});

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cloister-identity-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

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
});
