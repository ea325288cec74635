/** The pinned AMD roots: byte-identical to the fixtures, digests as documented, chains verify. */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { toHex } from "../../attestation/bytes.ts";
import { sha256 } from "../../attestation/crypto.ts";
import * as amd from "../../attestation/roots/amd.ts";
import { checkIssuedBy, checkValidity } from "../../attestation/x509.ts";

const F = new URL("../fixtures/attestation/", import.meta.url);
const EXPECTED = JSON.parse(readFileSync(new URL("EXPECTED.json", F), "utf8")) as {
  amd_roots: Record<string, { certs: Record<string, [string, string, string, string]> }>;
};
const README = readFileSync(new URL("../../attestation/roots/README.md", import.meta.url), "utf8");

const products = ["Milan", "Genoa", "Turin"] as const;
const roles = ["ark", "ask", "asvk"] as const;

describe("pinned AMD roots", () => {
  it.each(products.flatMap((p) => roles.map((r) => [p, r] as const)))(
    "%s %s equals the fixture byte for byte and has the documented digest",
    async (product, role) => {
      const constant = (amd as unknown as Record<string, string>)[`${role.toUpperCase()}_${product.toUpperCase()}_PEM`];
      const file = readFileSync(new URL(`amd-roots/${role}-${product.toLowerCase()}.pem`, F), "utf8");
      expect(constant).toBe(file);
      const anchor = amd.amdRoot(product);
      const cert = anchor[role];
      expect(cert).not.toBeNull();
      const digest = toHex(await sha256(cert!.der));
      const [cn, , , expectedDigest] = EXPECTED.amd_roots[product.toLowerCase()]!.certs[role]!;
      expect(digest).toBe(expectedDigest);
      expect(amd.AMD_ROOT_SHA256[`${role}-${product.toLowerCase()}`]).toBe(digest);
      expect(README).toContain(digest);
      expect(`CN=${cert!.subject.split("CN=")[1]}`).toBe(cn);
    },
  );

  it.each(products)("%s: ARK self-signed, ASK and ASVK issued by it, all valid in 2026", async (product) => {
    const a = amd.amdRoot(product);
    const at = new Date("2026-01-01T00:00:00Z");
    expect([a.product, a.simulated]).toEqual([product, false]);
    await checkIssuedBy(a.ark, a.ark, "ARK", "ARK");
    await checkIssuedBy(a.ask, a.ark, "ASK", "ARK");
    await checkIssuedBy(a.asvk!, a.ark, "ASVK", "ARK");
    for (const c of [a.ark, a.ask, a.asvk!]) checkValidity(c, at, "AMD");
  });

  it("parses each anchor once (lazy, cached)", () => {
    const a = amd.amdRoot("Genoa");
    expect(a.ark).toBe(a.ark);
    expect(a.ask).toBe(amd.AMD_ROOTS[1]!.ask);
    expect(amd.AMD_ROOTS.map((x) => x.product)).toEqual(["Milan", "Genoa", "Turin"]);
    expect(Object.isFrozen(amd.AMD_ROOTS)).toBe(true);
  });
});
