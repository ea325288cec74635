/**
 * SECURITY.md's key broker limits ("Non-goals and known limits", "Denial of service") against the
 * code's defaults: each number the page gives is computed here from the constant it stands for, so
 * a default changed in the code without the page (or the reverse) fails. The behaviour behind each
 * is tested in test/attestation/kbs.test.ts and kbs-connections.test.ts; this ties the page to it.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CLIENT_LIMITS } from "../../attestation/kbs/broker.ts";
import {
  MAX_CONNECTIONS_PER_CLIENT,
  MAX_RELEASE_BYTES,
  MAX_RELEASES_AT_ONCE,
  MAX_RELEASES_AT_ONCE_PER_CLIENT,
} from "../../attestation/kbs/server.ts";
import { DEFAULT_CLIENT_STALL_TIMEOUT_MS, MAX_REQUESTS_PER_CONNECTION } from "../../enclave/connection-guards.ts";
import { DEFAULT_MAX_CONNECTIONS } from "../../enclave/http.ts";
import { REPO_ROOT } from "../helpers/cli.ts";

const PAGE = readFileSync(join(REPO_ROOT, "SECURITY.md"), "utf8");

/** The page's "Denial of service" item, its lines joined (a phrase may be wrapped). */
function denialOfService(): string {
  const start = PAGE.indexOf("- Denial of service:");
  const end = PAGE.indexOf("\n- ", start + 1);
  expect(start, "SECURITY.md has a 'Denial of service' item").toBeGreaterThan(0);
  return PAGE.slice(start, end).replace(/\s+/g, " ");
}

/** 5000 as the page writes it: "5 000". */
function spaced(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+$)/g, " ");
}

describe("SECURITY.md's key broker limits", () => {
  it("are the code's defaults", () => {
    const text = denialOfService();
    expect(CLIENT_LIMITS.windowMs).toBe(60_000); // "a minute"
    const phrases = [
      `to ${CLIENT_LIMITS.challengesPerMinute} challenges and ${CLIENT_LIMITS.releasesPerMinute} release attempts a minute`,
      `counts at most ${spaced(CLIENT_LIMITS.maxClients)} addresses at once`,
      `reads at most ${MAX_RELEASES_AT_ONCE} release requests at once, ${MAX_RELEASES_AT_ONCE_PER_CLIENT} from one address`,
      `more than ${(MAX_RELEASES_AT_ONCE * MAX_RELEASE_BYTES) / (1024 * 1024)} MiB of request bodies`,
      `holds at most ${MAX_CONNECTIONS_PER_CLIENT} of its ${spaced(DEFAULT_MAX_CONNECTIONS)} connections from one address`,
      `stops reading its answers (${DEFAULT_CLIENT_STALL_TIMEOUT_MS / 1000} s)`,
      `pipelines more than ${MAX_REQUESTS_PER_CONNECTION} requests`,
    ];
    for (const phrase of phrases) expect(text, phrase).toContain(phrase);
  });
});
