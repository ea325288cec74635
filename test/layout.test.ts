/**
 * Which top-level folder may import which (README.md, "Layout"). client/cli/ is the command line
 * every folder's commands share, so any folder may import its shared files; every other import of
 * client/ from another folder is a named exception with its reason. attestation/, manifests/ and
 * models/ import neither enclave/ nor host/ except where listed; host/ imports enclave/ only where
 * listed (the server layer every server shares, the audit log's tags). Each exception must still be
 * needed.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { importEdges, ROOT, tsFiles } from "./helpers/import-graph.ts";

/** The shared command-line layer: options, output and errors, help examples, bounded file reads. */
const CLI_LAYER = new Set([
  "client/cli/bounded-file.ts",
  "client/cli/commands.ts",
  "client/cli/help-examples.ts",
  "client/cli/output.ts",
  "client/cli/run-client.ts",
  "client/cli/terminal-text.ts",
  "client/cli/time-option.ts",
]);

/** Imports of client/ outside the shared command line, each with why it crosses. */
const CLIENT_EXCEPTIONS: { reason: string; edges: string[] }[] = [
  { reason: "the installed command starts the CLI", edges: ["bin/cloister.js -> client/cli/main.ts"] },
  {
    reason: "the key broker is a relying party: it appraises a document with a client policy",
    edges: [
      "attestation/kbs/broker.ts -> client/errors.ts",
      "attestation/kbs/broker.ts -> client/policy.ts",
      "attestation/kbs/config.ts -> client/errors.ts",
      "attestation/kbs/config.ts -> client/policy.ts",
    ],
  },
  {
    reason: "`cloister attestation verify --policy` appraises the evidence with a client policy",
    edges: [
      "attestation/verify-evidence-cli.ts -> client/errors.ts",
      "attestation/verify-evidence-cli.ts -> client/policy.ts",
    ],
  },
  {
    reason: "one loopback rule (against DNS rebinding) for every server kept to this machine, the key broker's too",
    edges: [
      "attestation/kbs/cli-impl.ts -> client/loopback.ts",
      "attestation/kbs/server.ts -> client/loopback.ts",
      "enclave/http.ts -> client/loopback.ts",
    ],
  },
  {
    reason:
      "`cloister up` checks --cors-origin before it starts the host, so the rule lives in client/ (no host import)",
    edges: ["host/cors.ts -> client/cors-origin.ts", "host/run.ts -> client/cors-origin.ts"],
  },
];

/** Imports of enclave/ or host/ from attestation/, manifests/ and models/, each with its reason. */
const PARTY_EXCEPTIONS: { reason: string; edges: string[] }[] = [
  {
    reason: "the key broker serves through the listener every server shares (enclave/http.ts, connection guards)",
    edges: [
      "attestation/kbs/cli-impl.ts -> enclave/http.ts",
      "attestation/kbs/server.ts -> enclave/connection-guards.ts",
      "attestation/kbs/server.ts -> enclave/http.ts",
    ],
  },
  {
    reason: "`cloister manifest check` refuses a request policy the enclave would refuse at boot",
    edges: [
      "manifests/cli-impl.ts -> enclave/pipeline/errors.ts",
      "manifests/cli-impl.ts -> enclave/pipeline/policy.ts",
    ],
  },
  {
    reason: "`cloister model run` is declared with the enclave's run command",
    edges: ["models/cli.ts -> enclave/run-cli.ts"],
  },
];

/** Imports of enclave/ from host/ (the untrusted gateway), each with its reason: never the pipeline or the engine. */
const HOST_EXCEPTIONS: { reason: string; edges: string[] }[] = [
  {
    reason: "the host listens, refuses, reads bodies and stops through the listener every server shares",
    edges: [
      "host/app.ts -> enclave/http.ts",
      "host/cli.ts -> enclave/http.ts",
      "host/run.ts -> enclave/http.ts",
      "host/server.ts -> enclave/http.ts",
    ],
  },
  {
    reason: "the host guards its connections as every server does (connection limits, stalled clients)",
    edges: ["host/app.ts -> enclave/connection-guards.ts", "host/server.ts -> enclave/connection-guards.ts"],
  },
  {
    reason: "one timer for the host's answers in flight, as for the stalled clients the guards watch",
    edges: ["host/app.ts -> enclave/sweep.ts"],
  },
  {
    reason: "the host checks each audit record it collects with the tags the enclave signs it with (constants only)",
    edges: ["host/audit-record-check.ts -> enclave/pipeline/audit-tags.ts"],
  },
];

/** The files of `folders`, at least `least` of them (a folder that moved fails the test, never passes it empty). */
function filesOf(folders: string[], least = 50): string[] {
  const files = folders.flatMap((folder) =>
    folder === "bin" ? [join(ROOT, "bin/cloister.js")] : tsFiles(join(ROOT, folder)),
  );
  expect(files.length).toBeGreaterThan(least);
  return files;
}

const listed = (exceptions: { edges: string[] }[]) => exceptions.flatMap((exception) => exception.edges).sort();

describe("folder layout", () => {
  it("lets other folders import client/ only through the shared command line or a listed exception", () => {
    const found = importEdges(filesOf(["attestation", "enclave", "manifests", "models", "host", "sealed", "bin"]), [
      "client",
    ]);
    const exceptions = listed(CLIENT_EXCEPTIONS);
    const outside = found.filter((edge) => !CLI_LAYER.has(edge.split(" -> ")[1]!));
    expect(outside.filter((edge) => !exceptions.includes(edge))).toEqual([]);
    // Each exception is still needed, and each shared command-line file is still shared.
    expect(outside).toEqual(exceptions);
    const shared = new Set(found.map((edge) => edge.split(" -> ")[1]!).filter((target) => CLI_LAYER.has(target)));
    expect([...shared].sort()).toEqual([...CLI_LAYER].sort());
  });

  it("keeps attestation/, manifests/ and models/ off enclave/ and host/ except where listed", () => {
    const found = importEdges(filesOf(["attestation", "manifests", "models"]), ["enclave", "host"]);
    expect(found.filter((edge) => !listed(PARTY_EXCEPTIONS).includes(edge))).toEqual([]);
    expect(found).toEqual(listed(PARTY_EXCEPTIONS));
    expect(found.filter((edge) => edge.split(" -> ")[1]!.startsWith("host/"))).toEqual([]);
  });

  it("lets host/ import enclave/ only where listed", () => {
    const found = importEdges(filesOf(["host"], 10), ["enclave"]);
    expect(found.filter((edge) => !listed(HOST_EXCEPTIONS).includes(edge))).toEqual([]);
    expect(found).toEqual(listed(HOST_EXCEPTIONS));
  });
});
