/**
 * Architecture checks: sealed/ stays platform-neutral, and the untrusted host never loads the code
 * that opens sealed messages. The host may import sealed/envelope.ts (routing-header parsing), whose
 * import closure must contain no cryptography, and that closure's crypto-free byte helpers and
 * errors (sealed/bytes.ts: readBoundedBytes for the audit collector).
 */
import { join, relative } from "node:path";
import nacl from "tweetnacl";
import { describe, expect, it } from "vitest";
import { ENVELOPE_PREFIX_LENGTH, ROUTING_HEADER_LENGTH } from "../../sealed/envelope.ts";
import { closure, importEdges, importsOf, ROOT, tsFiles } from "../helpers/import-graph.ts";

const HOST_ALLOWED = new Set(["sealed/envelope.ts"]);

describe("sealed/ boundaries", () => {
  it("imports nothing from node: (the browser client reuses it)", () => {
    const files = tsFiles(join(ROOT, "sealed"));
    expect(files.length).toBeGreaterThan(5);
    for (const file of files) {
      // Pure-JS cryptography only: tweetnacl and @noble/hashes (no node:, no platform bindings).
      const bad = importsOf(file).filter(
        (s) => !(s.startsWith("./") || s === "tweetnacl" || s === "@noble/hashes/sha2.js"),
      );
      expect(bad, relative(ROOT, file)).toEqual([]);
    }
  });

  it("lets host/ import only the crypto-free routing-header parser and byte helpers", () => {
    const files = tsFiles(join(ROOT, "host"));
    expect(files.length).toBeGreaterThan(5);
    for (const file of files) {
      const reached = [...closure(file)].filter(
        (s) => s.startsWith("sealed/") || s === "tweetnacl" || s.startsWith("@noble/"),
      );
      const bad = reached.filter((s) => !HOST_ALLOWED.has(s) && s !== "sealed/bytes.ts" && s !== "sealed/errors.ts");
      expect(bad, relative(ROOT, file)).toEqual([]);
    }
  });

  it("lets the measured folders import host/ only where listed", () => {
    // The command line reaches the host's code for `cloister host` (its registration); nothing else
    // measured imports the untrusted host.
    const allowed = new Set(["client/cli/program.ts -> host/cli.ts"]);
    const measured = ["client", "attestation", "enclave", "manifests", "models", "sealed"];
    const files = [...measured.flatMap((dir) => tsFiles(join(ROOT, dir))), join(ROOT, "bin/cloister.js")];
    expect(files.length).toBeGreaterThan(50);
    const found = importEdges(files, ["host"]);
    expect(found.filter((edge) => !allowed.has(edge))).toEqual([]);
    // Each exception is still needed (else it is dropped from the list).
    expect(found.sort()).toEqual([...allowed].sort());
  });

  it("keeps the host's audit store, and all it reaches, out of sealed/ and enclave/", () => {
    const reached = [...closure(join(ROOT, "host/audit-store.ts"))];
    expect(reached.filter((s) => s.startsWith("sealed/") || s.startsWith("enclave/"))).toEqual([]);
    expect(reached).toContain("client/cli/output.ts");
  });

  it("keeps sealed/envelope.ts free of cryptography", () => {
    const reached = [...closure(join(ROOT, "sealed/envelope.ts"))];
    expect(reached.sort()).toEqual(["sealed/bytes.ts", "sealed/errors.ts"]);
  });

  it("spells out the same sizes as tweetnacl", () => {
    expect(ENVELOPE_PREFIX_LENGTH).toBe(ROUTING_HEADER_LENGTH + nacl.box.publicKeyLength + nacl.box.nonceLength);
    expect(nacl.box.overheadLength).toBe(16);
  });
});
