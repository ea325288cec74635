/**
 * A host in front of a pool, as `cloister host` runs it (startHost), for tests of what its own log
 * says of the members (docs/deploy.md's pool lines): on a loopback port, no audit store, no access
 * log, one API key that may attest. Its members are read before it listens, then when a test's
 * request makes it, or by its refresh every 60 s.
 */
import { hashApiKey } from "../../client/cli/api-key-hash.ts";
import type { RunningServer } from "../../enclave/http.ts";
import { ApiKeyStore } from "../../host/identity.ts";
import { startHost } from "../../host/server.ts";

/** Starts it over `urls` (`--enclave-url` order); each line of the host's own log goes to `onLine`. */
export function startPoolHost(
  urls: readonly string[],
  apiKey: string,
  onLine: (line: string) => void,
): Promise<RunningServer> {
  return startHost({
    enclaveUrls: urls,
    poolRefreshMs: 60_000,
    apiKeys: new ApiKeyStore({
      version: 1,
      keys: [{ id: "k", project: "p", sha256: hashApiKey(apiKey), permissions: ["attest"], requestsPerMinute: 60 }],
    }),
    hostname: "127.0.0.1",
    port: 0,
    accessLog: () => {},
    auditDir: null,
    onError: onLine,
  });
}
