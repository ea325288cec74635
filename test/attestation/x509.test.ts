import { constants, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { concatBytes } from "../../attestation/bytes.ts";
import { derChildren, derEncoding, encodeTlv, encodeUnsignedInteger, readDer } from "../../attestation/der.ts";
import { AttestationError } from "../../attestation/errors.ts";
import {
  der,
  type ExtensionSpec,
  encodeExtension,
  encodeName,
  writeCertificate,
  X509_OID,
} from "../../attestation/sim/x509-writer.ts";
import {
  type Certificate,
  checkNotRevoked,
  commonNameOf,
  decodeSignatureAlgorithm,
  ecdsaDerToRaw,
  parseCertificate,
  parseCertificateBytes,
  parseCrl,
  parsePemCertificates,
  verifyChain,
} from "../../attestation/x509.ts";
import { codeOf, thrownCode } from "../helpers/attestation.ts";

const F = new URL("../fixtures/attestation/", import.meta.url);
const read = (p: string) => readFileSync(new URL(p, F));
const pem = (p: string) => parsePemCertificates(read(p).toString("utf8"))[0]!;

describe("x509", () => {
  const arkMilan = pem("amd-roots/ark-milan.pem");
  const askMilan = pem("amd-roots/ask-milan.pem");
  const arkGenoa = pem("amd-roots/ark-genoa.pem");
  const askGenoa = pem("amd-roots/ask-genoa.pem");

  it("parses the AMD Milan ARK as a self-signed RSA-PSS CA", () => {
    expect(arkMilan.subject).toContain("CN=ARK-Milan");
    expect(arkMilan.isCA).toBe(true);
    expect(arkMilan.signatureAlgorithm).toEqual({ kind: "rsa-pss", hash: "SHA-384", saltLength: 48 });
    expect(arkMilan.publicKey.kind).toBe("rsa");
    expect(arkMilan.notAfter.toISOString()).toBe("2045-10-22T17:23:05.000Z");
  });

  it("verifies a real VCEK (serial 0, no AKI) to the Milan ARK", async () => {
    const vcek = parseCertificateBytes(read("snp/milan-virtee-v2-vcek.der"));
    expect(vcek.serialNumber).toEqual(Uint8Array.of(0));
    const chain = [
      { cert: vcek, role: "VCEK" },
      { cert: askMilan, role: "ASK" },
      { cert: arkMilan, role: "ARK" },
    ];
    await expect(verifyChain(chain, [arkMilan], new Date("2026-01-01T00:00:00Z"))).resolves.toBeUndefined();
  });

  it("reads BOOLEANs as DER only: a critical flag or cA of 01 (BER's true) is refused, not read as false", () => {
    const der = askMilan.der;
    const at = Buffer.from(der).indexOf(Buffer.from([0x01, 0x01, 0xff]));
    expect(at).toBeGreaterThan(0);
    expect(parseCertificateBytes(der).isCA).toBe(true);
    const ber = der.slice();
    ber[at + 2] = 0x01;
    expect(() => parseCertificateBytes(ber)).toThrow(expect.objectContaining({ code: "DER_BAD_BOOLEAN" }));
  });

  it("rejects the fake VCEK with CERT_SIGNATURE_INVALID", async () => {
    const fake = parseCertificateBytes(read("snp/milan-fake-vcek-invalid-new.der"));
    const chain = [
      { cert: fake, role: "VCEK" },
      { cert: askMilan, role: "ASK" },
      { cert: arkMilan, role: "ARK" },
    ];
    await expect(verifyChain(chain, [arkMilan], new Date("2026-01-01T00:00:00Z"))).rejects.toMatchObject({
      code: "CERT_SIGNATURE_INVALID",
    });
  });

  it("rejects a chain to the wrong product's root", async () => {
    const vcek = parseCertificateBytes(read("snp/milan-virtee-v2-vcek.der"));
    const chain = [
      { cert: vcek, role: "VCEK" },
      { cert: askGenoa, role: "ASK" },
      { cert: arkGenoa, role: "ARK" },
    ];
    await expect(verifyChain(chain, [arkGenoa], new Date("2026-01-01T00:00:00Z"))).rejects.toMatchObject({
      code: "CERT_ISSUER_MISMATCH",
    });
  });

  it("rejects a root that is not pinned", async () => {
    const chain = [
      { cert: askMilan, role: "ASK" },
      { cert: arkMilan, role: "ARK" },
    ];
    await expect(verifyChain(chain, [arkGenoa], new Date("2026-01-01T00:00:00Z"))).rejects.toMatchObject({
      code: "ROOT_NOT_TRUSTED",
    });
  });

  it("rejects certificates outside their validity window", async () => {
    const vlek = parseCertificateBytes(read("snp/milan-aws-vlek.der"));
    const asvk = pem("amd-roots/asvk-milan.pem");
    const chain = [
      { cert: vlek, role: "VLEK" },
      { cert: asvk, role: "ASVK" },
      { cert: arkMilan, role: "ARK" },
    ];
    await expect(verifyChain(chain, [arkMilan], new Date("2025-06-01T00:00:00Z"))).resolves.toBeUndefined();
    await expect(verifyChain(chain, [arkMilan], new Date("2025-12-11T00:00:00Z"))).rejects.toMatchObject({
      code: "CERT_EXPIRED",
    });
    await expect(verifyChain(chain, [arkMilan], new Date("2024-01-01T00:00:00Z"))).rejects.toMatchObject({
      code: "CERT_NOT_YET_VALID",
    });
  });

  it("verifies Intel CRLs and refuses an out-of-date one", async () => {
    const root = pem("intel-roots/intel-sgx-root-ca.pem");
    const pca = pem("intel-roots/intel-sgx-pck-platform-ca.pem");
    const crl = parseCrl(read("tdx/collateral/root-ca-crl-2023-04-03.der"));
    await expect(checkNotRevoked(pca, crl, root, new Date("2023-05-01T00:00:00Z"), "PCK CA")).resolves.toBeUndefined();
    await expect(checkNotRevoked(pca, crl, root, new Date("2025-01-01T00:00:00Z"), "PCK CA")).rejects.toMatchObject({
      code: "CRL_EXPIRED",
    });
    // Current through nextUpdate inclusive; one second (the resolution of CRL times) past it, expired.
    const next = crl.nextUpdate as Date;
    await expect(checkNotRevoked(pca, crl, root, next, "PCK CA")).resolves.toBeUndefined();
    await expect(checkNotRevoked(pca, crl, root, new Date(next.getTime() + 1000), "PCK CA")).rejects.toMatchObject({
      code: "CRL_EXPIRED",
    });
    const pckCrl = parseCrl(read("tdx/collateral/pck-crl-platform-2023-06-08.der"));
    expect(pckCrl.revokedSerials.size).toBe(44);
  });

  it("refuses a CRL of another issuer, and a CRL not yet valid at the verification time", async () => {
    const root = pem("intel-roots/intel-sgx-root-ca.pem");
    const pca = pem("intel-roots/intel-sgx-pck-platform-ca.pem");
    const crl = parseCrl(read("tdx/collateral/root-ca-crl-2023-04-03.der"));
    // The root's CRL presented as the PCK Platform CA's (for a PCK leaf the PCK CA issued).
    await expect(checkNotRevoked(pca, crl, pca, new Date("2023-05-01T00:00:00Z"), "PCK leaf")).rejects.toMatchObject({
      code: "CRL_ISSUER_MISMATCH",
      message: `CRL issuer "${crl.issuer}" is not "${pca.subject}"`,
    });
    const before = new Date(crl.thisUpdate.getTime() - 1000);
    await expect(checkNotRevoked(pca, crl, root, before, "PCK CA")).rejects.toMatchObject({
      code: "CRL_NOT_YET_VALID",
    });
    await expect(checkNotRevoked(pca, crl, root, crl.thisUpdate, "PCK CA")).resolves.toBeUndefined();
  });

  it("reads a commonName from the DER Name, not by splitting the display string on commas", () => {
    expect(commonNameOf(arkMilan.subjectDer)).toBe("ARK-Milan");
    const tricky = encodeName([
      ["OU", "Engineering,CN=SEV-VLEK"],
      ["CN", "SEV-VCEK"],
    ]);
    expect(commonNameOf(tricky)).toBe("SEV-VCEK");
    expect(commonNameOf(encodeName([["O", "AMD"]]))).toBe("");
  });

  it("turns truncated or corrupted DER into a typed ParseError", () => {
    const der = arkMilan.der;
    for (const cut of [0, 1, 2, 10, 100, der.length - 1]) {
      expect(() => parseCertificate(der.subarray(0, cut))).toThrow(AttestationError);
    }
    const corrupted = new Uint8Array(der);
    corrupted[1] = 0x85; // a 5-byte length
    expect(() => parseCertificate(corrupted)).toThrow(AttestationError);
  });
});

/**
 * Certificate `n` of a test chain (0 the root) named names[n] with keys[n], issued by n - 1 (the
 * root by itself), valid 2026-01-01 to 2027-01-01 unless `window` says otherwise.
 */
function issueChainCertificate(
  keys: readonly { publicKey: KeyObject; privateKey: KeyObject }[],
  names: readonly Uint8Array[],
  n: number,
  extensions: ExtensionSpec[],
  window: { notBefore?: Date; notAfter?: Date } = {},
): Certificate {
  return parseCertificate(
    writeCertificate(
      {
        serial: Uint8Array.of(n + 1),
        signatureAlgorithm: "ecdsa-sha256",
        issuer: names[Math.max(n - 1, 0)]!,
        subject: names[n]!,
        notBefore: window.notBefore ?? new Date("2026-01-01T00:00:00Z"),
        notAfter: window.notAfter ?? new Date("2027-01-01T00:00:00Z"),
        spki: new Uint8Array(keys[n]!.publicKey.export({ type: "spki", format: "der" })),
        extensions,
      },
      (tbs) => new Uint8Array(sign("sha256", tbs, keys[Math.max(n - 1, 0)]!.privateKey)),
    ),
  );
}

describe("x509 chains: critical extensions and keyUsage (RFC 5280)", () => {
  const at = new Date("2026-06-01T00:00:00Z");
  const rootKey = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const leafKey = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const spki = (k: KeyObject) => new Uint8Array(k.export({ type: "spki", format: "der" }));
  const rootName = encodeName([["CN", "Test Root"]]);
  const ca = { oid: X509_OID.basicConstraints, critical: true, value: der.seq(der.boolean(true)) };
  const keyUsage = (bits: number) => ({ oid: X509_OID.keyUsage, critical: true, value: der.bits(Uint8Array.of(bits)) });
  const make = (spec: { subject: Uint8Array; key: KeyObject; extensions: ExtensionSpec[] }) =>
    parseCertificateBytes(
      writeCertificate(
        {
          serial: Uint8Array.of(1),
          signatureAlgorithm: "ecdsa-sha256",
          issuer: rootName,
          subject: spec.subject,
          notBefore: new Date("2026-01-01T00:00:00Z"),
          notAfter: new Date("2027-01-01T00:00:00Z"),
          spki: spki(spec.key),
          extensions: spec.extensions,
        },
        (tbs) => new Uint8Array(sign("sha256", tbs, rootKey.privateKey)),
      ),
    );
  const root = (usage = 0x06) => make({ subject: rootName, key: rootKey.publicKey, extensions: [ca, keyUsage(usage)] });
  const leaf = (extensions: ExtensionSpec[]) =>
    make({ subject: encodeName([["CN", "Test Leaf"]]), key: leafKey.publicKey, extensions });
  const chainOf = (l: Certificate, r: Certificate) => [
    { cert: l, role: "leaf" },
    { cert: r, role: "root" },
  ];
  // nameConstraints: a real extension this verifier does not process.
  const nameConstraints = (critical: boolean) => ({ oid: "2.5.29.30", critical, value: der.seq() });

  it("accepts a well-formed chain, and an unprocessed extension that is not critical", async () => {
    const r = root();
    await expect(verifyChain(chainOf(leaf([keyUsage(0x80)]), r), [r], at)).resolves.toBeUndefined();
    await expect(verifyChain(chainOf(leaf([nameConstraints(false)]), r), [r], at)).resolves.toBeUndefined();
  });

  it("refuses a certificate with a critical extension it does not process, naming it", async () => {
    const r = root();
    await expect(verifyChain(chainOf(leaf([nameConstraints(true)]), r), [r], at)).rejects.toMatchObject({
      code: "CERT_UNKNOWN_CRITICAL_EXTENSION",
      message: expect.stringContaining('leaf certificate "CN=Test Leaf": critical extension 2.5.29.30'),
    });
  });

  it("refuses an issuer whose keyUsage is not a BIT STRING (X509_BAD_KEY_USAGE)", async () => {
    const r = make({
      subject: rootName,
      key: rootKey.publicKey,
      extensions: [ca, { oid: X509_OID.keyUsage, critical: true, value: der.octets(Uint8Array.of(0x04)) }],
    });
    await expect(verifyChain(chainOf(leaf([]), r), [r], at)).rejects.toMatchObject({ code: "X509_BAD_KEY_USAGE" });
  });

  it("refuses an issuer whose keyUsage lacks keyCertSign", async () => {
    const r = root(0x82); // digitalSignature and cRLSign, no keyCertSign
    await expect(verifyChain(chainOf(leaf([]), r), [r], at)).rejects.toMatchObject({
      code: "CERT_NOT_CA",
      message: expect.stringContaining("keyUsage expected to include keyCertSign"),
    });
  });

  it("refuses a data-signing leaf whose keyUsage lacks digitalSignature, and checks a CA leaf as an issuer", async () => {
    const r = root();
    const caOnly = leaf([keyUsage(0x06)]); // keyCertSign and cRLSign: a CA key, not a signer of reports
    await expect(verifyChain(chainOf(caOnly, r), [r], at)).rejects.toMatchObject({
      code: "CERT_BAD_KEY_USAGE",
      message: expect.stringContaining(
        'leaf certificate "CN=Test Leaf": keyUsage expected to include digitalSignature',
      ),
    });
    await expect(verifyChain(chainOf(caOnly, r), [r], at, { leaf: "issuer" })).resolves.toBeUndefined();
    await expect(verifyChain(chainOf(leaf([keyUsage(0x80)]), r), [r], at, { leaf: "issuer" })).rejects.toMatchObject({
      code: "CERT_NOT_CA",
    });
    // No keyUsage at all (AMD's VCEK has none): nothing to refuse.
    await expect(verifyChain(chainOf(leaf([]), r), [r], at)).resolves.toBeUndefined();
  });

  it("refuses an issuer that basicConstraints does not make a CA, even with no keyUsage to refuse it", async () => {
    const noExtensions = make({ subject: rootName, key: rootKey.publicKey, extensions: [] });
    expect(noExtensions.isCA).toBeUndefined();
    const notCa = make({
      subject: rootName,
      key: rootKey.publicKey,
      extensions: [{ oid: X509_OID.basicConstraints, critical: true, value: der.seq() }], // cA absent: false
    });
    expect(notCa.isCA).toBe(false);
    for (const r of [noExtensions, notCa]) {
      await expect(verifyChain(chainOf(leaf([]), r), [r], at)).rejects.toMatchObject({
        code: "CERT_NOT_CA",
        message: 'root certificate "CN=Test Root": basicConstraints cA is not true',
      });
    }
  });

  it("refuses a certificate whose outer signature algorithm is not its TBS's, or that repeats an extension", () => {
    const good = leaf([keyUsage(0x80)]).der;
    // The outer AlgorithmIdentifier follows the TBSCertificate: ecdsa-with-SHA256 (…04 03 02) there
    // made ecdsa-with-SHA384 (…04 03 03), the TBS's own left as it is.
    const sha256Alg = Uint8Array.of(0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02);
    const outer = Buffer.from(good).lastIndexOf(Buffer.from(sha256Alg));
    expect(outer).toBeGreaterThan(Buffer.from(good).indexOf(Buffer.from(sha256Alg)));
    const mismatched = good.slice();
    mismatched[outer + sha256Alg.length - 1] = 0x03;
    expect(() => parseCertificateBytes(mismatched)).toThrow(
      expect.objectContaining({ code: "X509_ALGORITHM_MISMATCH" }),
    );
    expect(() => parseCertificateBytes(leaf([keyUsage(0x80), keyUsage(0x06)]).der)).toThrow(
      expect.objectContaining({ code: "X509_DUPLICATE_EXTENSION", message: "extension 2.5.29.15 appears twice" }),
    );
  });
});

describe("x509 chains: basicConstraints pathLenConstraint (RFC 5280 4.2.1.9)", () => {
  const at = new Date("2026-06-01T00:00:00Z");
  const keys = [0, 1, 2, 3].map(() => generateKeyPairSync("ec", { namedCurve: "P-256" }));
  const names = ["Root", "CA 1", "CA 2", "Leaf"].map((n) => encodeName([["CN", n]]));
  const caUsage = { oid: X509_OID.keyUsage, critical: true, value: der.bits(Uint8Array.of(0x06)) };
  const basic = (pathLen?: number) => ({
    oid: X509_OID.basicConstraints,
    critical: true,
    value: der.seq(der.boolean(true), ...(pathLen === undefined ? [] : [der.int(pathLen)])),
  });
  /** Certificate `n` (0 the root), issued by n - 1 (the root by itself), with these extensions. */
  const issue = (n: number, extensions: ExtensionSpec[]) => issueChainCertificate(keys, names, n, extensions);
  /** Leaf ← CA 2 ← CA 1 ← root, each CA with its pathLenConstraint (undefined: none). */
  const chain = (root?: number, ca1?: number, ca2?: number) => {
    const certs = [
      issue(3, []),
      issue(2, [basic(ca2), caUsage]),
      issue(1, [basic(ca1), caUsage]),
      issue(0, [basic(root), caUsage]),
    ];
    return { links: certs.map((cert, i) => ({ cert, role: ["leaf", "CA 2", "CA 1", "root"][i]! })), root: certs[3]! };
  };

  it("reads pathLenConstraint", () => {
    expect(chain(1).root.pathLen).toBe(1);
    expect(chain().root.pathLen).toBeUndefined();
    expect(chain().root.isCA).toBe(true);
  });

  it("accepts a chain within every CA's limit", async () => {
    for (const [root, ca1, ca2] of [
      [undefined, undefined, undefined],
      [2, 1, 0],
      [5, 3, 0],
    ]) {
      const { links, root: r } = chain(root, ca1, ca2);
      await expect(verifyChain(links, [r], at)).resolves.toBeUndefined();
    }
  });

  it("refuses more intermediate CAs below a CA than its pathLenConstraint allows", async () => {
    for (const [root, ca1, ca2, who] of [
      [1, undefined, undefined, "root"],
      [0, undefined, undefined, "root"],
      [undefined, 0, undefined, "CA 1"],
    ] as const) {
      const { links, root: r } = chain(root, ca1, ca2);
      await expect(verifyChain(links, [r], at)).rejects.toMatchObject({
        code: "CERT_PATH_TOO_LONG",
        message: expect.stringContaining(`${who} certificate "CN=${who === "root" ? "Root" : who}": pathLenConstraint`),
      });
    }
  });
});

describe("x509 chains: every certificate's validity window at the verification time (RFC 5280 6.1.3(a)(2))", () => {
  const keys = [0, 1, 2].map(() => generateKeyPairSync("ec", { namedCurve: "P-256" }));
  const names = ["Root", "Intermediate", "Leaf"].map((n) => encodeName([["CN", n]]));
  const caExtensions = [
    { oid: X509_OID.basicConstraints, critical: true, value: der.seq(der.boolean(true)) },
    { oid: X509_OID.keyUsage, critical: true, value: der.bits(Uint8Array.of(0x06)) },
  ];
  const signerUsage = [{ oid: X509_OID.keyUsage, critical: true, value: der.bits(Uint8Array.of(0x80)) }];
  /** Certificate `n` (0 the root, 1 the intermediate, 2 the leaf), issued by n - 1 (the root by itself). */
  const issue = (n: number, window: { notBefore?: Date; notAfter?: Date } = {}) =>
    issueChainCertificate(keys, names, n, n === 2 ? signerUsage : caExtensions, window);
  /** Leaf ← intermediate ← root, the one at `n` with `window`, the others valid 2026-2027. */
  const verifyWith = (n: number, window: { notBefore?: Date; notAfter?: Date }, at: Date) => {
    const certs = [2, 1, 0].map((i) => issue(i, i === n ? window : {}));
    const links = certs.map((cert, i) => ({ cert, role: ["leaf", "intermediate", "root"][i]! }));
    return codeOf(verifyChain(links, [certs[2]!], at));
  };
  const at = new Date("2026-06-01T00:00:00Z");
  const ms = (d: Date, delta: number) => new Date(d.getTime() + delta);

  it.each([
    [1, "intermediate"],
    [0, "root"],
  ] as const)("refuses an expired or not yet valid %s certificate under a valid leaf, naming it", async (n, role) => {
    expect(await verifyWith(n, {}, at)).toBe("ACCEPTED");
    expect(await verifyWith(n, { notAfter: ms(at, -1000) }, at)).toBe("CERT_EXPIRED");
    expect(await verifyWith(n, { notBefore: ms(at, 1000) }, at)).toBe("CERT_NOT_YET_VALID");
    const certs = [2, 1, 0].map((i) => issue(i, i === n ? { notAfter: ms(at, -1000) } : {}));
    const links = certs.map((cert, i) => ({ cert, role: ["leaf", "intermediate", "root"][i]! }));
    await expect(verifyChain(links, [certs[2]!], at)).rejects.toMatchObject({
      message: expect.stringMatching(
        new RegExp(`^${role} certificate "CN=${role === "root" ? "Root" : "Intermediate"}": expired`),
      ),
    });
  });

  // RFC 5280 4.1.2.5: "the period of time from notBefore through notAfter, inclusive"; certificate
  // times are whole seconds, so one second is the smallest step past either end.
  it.each([0, 1, 2])(
    "takes certificate %i as valid from notBefore through notAfter inclusive, to the millisecond",
    async (n) => {
      expect(await verifyWith(n, { notBefore: at }, at)).toBe("ACCEPTED");
      expect(await verifyWith(n, { notBefore: ms(at, 1000) }, at)).toBe("CERT_NOT_YET_VALID");
      expect(await verifyWith(n, { notAfter: at }, at)).toBe("ACCEPTED");
      expect(await verifyWith(n, { notAfter: ms(at, -1000) }, at)).toBe("CERT_EXPIRED");
    },
  );
});

describe("x509 chains: RSA key size", () => {
  const at = new Date("2026-06-01T00:00:00Z");
  const rootName = encodeName([["CN", "RSA Root"]]);
  const leafKey = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const ca = { oid: X509_OID.basicConstraints, critical: true, value: der.seq(der.boolean(true)) };
  /** A self-signed RSASSA-PSS root of `bits` and a leaf it issues. */
  const chainOf = (bits: number) => {
    const rootKey = generateKeyPairSync("rsa", { modulusLength: bits });
    const pss = (tbs: Uint8Array) =>
      new Uint8Array(
        sign("sha384", tbs, { key: rootKey.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 }),
      );
    const issue = (subject: Uint8Array, key: KeyObject, extensions: ExtensionSpec[]) =>
      parseCertificate(
        writeCertificate(
          {
            serial: Uint8Array.of(1),
            signatureAlgorithm: "rsa-pss-sha384",
            issuer: rootName,
            subject,
            notBefore: new Date("2026-01-01T00:00:00Z"),
            notAfter: new Date("2027-01-01T00:00:00Z"),
            spki: new Uint8Array(key.export({ type: "spki", format: "der" })),
            extensions,
          },
          pss,
        ),
      );
    const root = issue(rootName, rootKey.publicKey, [ca]);
    const leaf = issue(encodeName([["CN", "Leaf"]]), leafKey.publicKey, []);
    return {
      root,
      links: [
        { cert: leaf, role: "leaf" },
        { cert: root, role: "root" },
      ],
    };
  };

  it("accepts an RSA-2048 issuer and refuses a smaller one", async () => {
    const strong = chainOf(2048);
    expect(strong.root.publicKey).toMatchObject({ kind: "rsa", modulusBits: 2048 });
    await expect(verifyChain(strong.links, [strong.root], at)).resolves.toBeUndefined();
    const weak = chainOf(1024);
    await expect(verifyChain(weak.links, [weak.root], at)).rejects.toMatchObject({
      code: "CERT_KEY_TOO_SMALL",
      message: 'root certificate "CN=RSA Root": RSA key expected at least 2048 bits, found 1024',
    });
  });
});

describe("x509 parsing: every malformed certificate, key, algorithm, PEM or CRL has its own code", () => {
  const key = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const spkiOf = (k: KeyObject) => new Uint8Array(k.export({ type: "spki", format: "der" }));
  const name = encodeName([["CN", "Test"]]);
  const ecdsaSha256 = der.seq(der.oid(X509_OID.ecdsaWithSha256));
  const time = (iso: string) => encodeTlv(0x17, new TextEncoder().encode(iso));
  /** A certificate made of these TBS fields (after version and serial), signed by nothing that verifies. */
  const certificate = (fields: {
    algorithm?: Uint8Array;
    issuer?: Uint8Array;
    validity?: Uint8Array;
    spki?: Uint8Array;
    /** The version INTEGER (2: v3); null leaves the field out (v1). */
    version?: number | null;
    /** The version [0] field as given, in place of one made of `version`. */
    versionField?: Uint8Array;
    trailing?: Uint8Array[];
  }) =>
    der.seq(
      der.seq(
        ...(fields.version === null ? [] : [fields.versionField ?? der.explicit(0, der.int(fields.version ?? 2))]),
        der.int(1),
        fields.algorithm ?? ecdsaSha256,
        fields.issuer ?? name,
        fields.validity ?? der.seq(time("260101000000Z"), time("270101000000Z")),
        name,
        fields.spki ?? spkiOf(key.publicKey),
        ...(fields.trailing ?? []),
      ),
      fields.algorithm ?? ecdsaSha256,
      der.bits(Uint8Array.of(0x30, 0x00)),
    );
  const pss = (...fields: Uint8Array[]) => der.seq(der.oid(X509_OID.rsassaPss), der.seq(...fields));
  const sha384 = der.seq(der.oid(X509_OID.sha384), der.null());
  const mgf1 = (hash: Uint8Array) => der.explicit(1, der.seq(der.oid(X509_OID.mgf1), hash));
  /** An extensions [3] field holding these extensions. */
  const extensions = (...specs: ExtensionSpec[]) => der.explicit(3, der.seq(...specs.map(encodeExtension)));
  const basicConstraints = (value: Uint8Array) => ({ oid: X509_OID.basicConstraints, critical: true, value });
  const keyUsage = { oid: X509_OID.keyUsage, critical: true, value: der.bits(Uint8Array.of(0x80)) };
  const usage = der.octets(keyUsage.value);
  /** An extensions [3] field holding one Extension SEQUENCE of exactly these fields. */
  const rawExtension = (...fields: Uint8Array[]) => der.explicit(3, der.seq(der.seq(...fields)));

  it("reads the well-formed certificate the cases below each change once", () => {
    expect(parseCertificate(certificate({})).subject).toBe("CN=Test");
    expect(parseCertificate(certificate({ version: null })).version).toBe(1);
    expect(
      parseCertificate(certificate({ trailing: [encodeTlv(0x81, Uint8Array.of(0)), extensions(keyUsage)] })).version,
    ).toBe(3);
    // Unique identifiers are allowed from v2 on (RFC 5280 4.1.2.8).
    expect(
      parseCertificate(
        certificate({ version: 1, trailing: [encodeTlv(0x81, Uint8Array.of(0)), encodeTlv(0x82, Uint8Array.of(0))] }),
      ).version,
    ).toBe(2);
    const withPathLen = parseCertificate(
      certificate({ trailing: [extensions(basicConstraints(der.seq(der.boolean(true), der.int(0))))] }),
    );
    expect([withPathLen.isCA, withPathLen.pathLen]).toEqual([true, 0]);
    expect(parseCertificate(certificate({ trailing: [extensions(basicConstraints(der.seq()))] })).isCA).toBe(false);
    expect(
      decodeSignatureAlgorithm(readDer(pss(der.explicit(0, sha384), mgf1(sha384), der.explicit(2, der.int(48))))),
    ).toEqual({ kind: "rsa-pss", hash: "SHA-384", saltLength: 48 });
    // trailerField 1 is its DEFAULT, yet AMD's ARK, ASK and VCEK certificates encode it: still read.
    expect(
      decodeSignatureAlgorithm(
        readDer(pss(der.explicit(0, sha384), mgf1(sha384), der.explicit(2, der.int(48)), der.explicit(3, der.int(1)))),
      ),
    ).toEqual({ kind: "rsa-pss", hash: "SHA-384", saltLength: 48 });
  });

  const cases: [string, () => unknown, string][] = [
    [
      "a Name attribute without a value",
      () => parseCertificate(certificate({ issuer: der.seq(der.set(der.seq(der.oid(X509_OID.commonName)))) })),
      "X509_BAD_NAME",
    ],
    [
      "a validity with one time only",
      () => parseCertificate(certificate({ validity: der.seq(time("260101000000Z")) })),
      "X509_BAD_VALIDITY",
    ],
    [
      "an unknown signature algorithm (ecdsa-with-SHA224)",
      () => parseCertificate(certificate({ algorithm: der.seq(der.oid("1.2.840.10045.4.3.1")) })),
      "X509_UNSUPPORTED_ALGORITHM",
    ],
    [
      "an EC key on P-521",
      () =>
        parseCertificate(certificate({ spki: spkiOf(generateKeyPairSync("ec", { namedCurve: "P-521" }).publicKey) })),
      "X509_UNSUPPORTED_ALGORITHM",
    ],
    [
      "an Ed25519 key",
      () => parseCertificate(certificate({ spki: spkiOf(generateKeyPairSync("ed25519").publicKey) })),
      "X509_UNSUPPORTED_ALGORITHM",
    ],
    [
      "a compressed EC point",
      () => {
        const spki = spkiOf(key.publicKey);
        spki[spki.length - 65] = 0x02; // the point's 04 prefix
        return parseCertificate(certificate({ spki }));
      },
      "X509_BAD_KEY",
    ],
    [
      "RSASSA-PSS without parameters",
      () => decodeSignatureAlgorithm(readDer(der.seq(der.oid(X509_OID.rsassaPss)))),
      "X509_BAD_PSS_PARAMS",
    ],
    ["RSASSA-PSS on SHA-1 defaults", () => decodeSignatureAlgorithm(readDer(pss())), "X509_BAD_PSS_PARAMS"],
    [
      "RSASSA-PSS with an empty parameter",
      () => decodeSignatureAlgorithm(readDer(pss(der.explicit(0, new Uint8Array())))),
      "X509_BAD_PSS_PARAMS",
    ],
    [
      "RSASSA-PSS with MGF1 on another hash",
      () =>
        decodeSignatureAlgorithm(
          readDer(pss(der.explicit(0, sha384), mgf1(der.seq(der.oid("2.16.840.1.101.3.4.2.1"), der.null())))),
        ),
      "X509_BAD_PSS_PARAMS",
    ],
    [
      "RSASSA-PSS with a mask generation other than MGF1",
      () =>
        decodeSignatureAlgorithm(
          readDer(pss(der.explicit(0, sha384), der.explicit(1, der.seq(der.oid(X509_OID.sha384), sha384)))),
        ),
      "X509_BAD_PSS_PARAMS",
    ],
    [
      "RSASSA-PSS with trailerField 2",
      () => decodeSignatureAlgorithm(readDer(pss(der.explicit(0, sha384), mgf1(sha384), der.explicit(3, der.int(2))))),
      "X509_BAD_PSS_PARAMS",
    ],
    [
      "RSASSA-PSS with an unknown field [4]",
      () => decodeSignatureAlgorithm(readDer(pss(der.explicit(0, sha384), mgf1(sha384), der.explicit(4, der.int(1))))),
      "X509_BAD_PSS_PARAMS",
    ],
    [
      "RSASSA-PSS on SHA-1 (explicit)",
      () => decodeSignatureAlgorithm(readDer(pss(der.explicit(0, der.seq(der.oid("1.3.14.3.2.26"), der.null()))))),
      "X509_UNSUPPORTED_ALGORITHM",
    ],
    ["no PEM block", () => parsePemCertificates("a certificate, in prose"), "PEM_NO_CERTIFICATE"],
    [
      "PEM text that is not base64",
      () => parsePemCertificates("-----BEGIN CERTIFICATE-----\nMII*\n-----END CERTIFICATE-----"),
      "BAD_BASE64",
    ],
    [
      "input that is not bytes at all (a caller in plain JavaScript)",
      () => parseCertificate(-1 as unknown as Uint8Array),
      "X509_MALFORMED",
    ],
    [
      "an ECDSA signature integer longer than the curve",
      () => ecdsaDerToRaw(der.seq(encodeUnsignedInteger(new Uint8Array(33).fill(1)), der.int(1)), "P-256"),
      "X509_BAD_SIGNATURE",
    ],
    [
      "a CRL without thisUpdate",
      () => parseCrl(der.seq(der.seq(der.int(1), ecdsaSha256, name), ecdsaSha256, der.bits(Uint8Array.of(0x30, 0x00)))),
      "DER_MISSING",
    ],
    ["a CRL that is not bytes at all", () => parseCrl(-1 as unknown as Uint8Array), "CRL_MALFORMED"],
    [
      "a validity with three times",
      () =>
        parseCertificate(
          certificate({ validity: der.seq(time("260101000000Z"), time("270101000000Z"), time("280101000000Z")) }),
        ),
      "X509_BAD_VALIDITY",
    ],
    [
      "a certificate with a fourth field after signatureValue",
      () => parseCertificate(der.seq(...derChildren(readDer(certificate({}))).map(derEncoding), der.int(7))),
      "DER_TRAILING_DATA",
    ],
    [
      "a CRL with a fourth field after signatureValue",
      () =>
        parseCrl(
          der.seq(
            der.seq(der.int(1), ecdsaSha256, name, time("260101000000Z")),
            ecdsaSha256,
            der.bits(Uint8Array.of(0x30, 0x00)),
            der.int(7),
          ),
        ),
      "DER_TRAILING_DATA",
    ],
    [
      "a tbsCertificate with fields after the extensions",
      () => parseCertificate(certificate({ trailing: [extensions(keyUsage), der.int(7)] })),
      "DER_UNEXPECTED_TAG",
    ],
    [
      "a tbsCertificate with extensions twice",
      () => parseCertificate(certificate({ trailing: [extensions(keyUsage), extensions(keyUsage)] })),
      "DER_UNEXPECTED_TAG",
    ],
    ["a version 10 (INTEGER 9)", () => parseCertificate(certificate({ version: 9 })), "X509_BAD_VERSION"],
    [
      "extensions in a v2 certificate",
      () => parseCertificate(certificate({ version: 1, trailing: [extensions(keyUsage)] })),
      "X509_BAD_VERSION",
    ],
    [
      "a version [0] holding a second value",
      () => parseCertificate(certificate({ versionField: der.explicit(0, concatBytes(der.int(2), der.int(2))) })),
      "DER_TRAILING_DATA",
    ],
    // DER encodes no DEFAULT value (X.690 11.5): each of these has one encoding only without it.
    [
      "a version v1 encoded although it is the DEFAULT (RFC 5280 4.1)",
      () => parseCertificate(certificate({ version: 0 })),
      "X509_BAD_VERSION",
    ],
    [
      "an extension with critical FALSE encoded although it is the DEFAULT",
      () =>
        parseCertificate(
          certificate({ trailing: [rawExtension(der.oid(X509_OID.keyUsage), der.boolean(false), usage)] }),
        ),
      "DER_BAD_BOOLEAN",
    ],
    [
      "a basicConstraints with cA FALSE encoded although it is the DEFAULT",
      () => parseCertificate(certificate({ trailing: [extensions(basicConstraints(der.seq(der.boolean(false))))] })),
      "DER_BAD_BOOLEAN",
    ],
    [
      "RSASSA-PSS with saltLength 20 encoded although it is the DEFAULT",
      () => decodeSignatureAlgorithm(readDer(pss(der.explicit(0, sha384), mgf1(sha384), der.explicit(2, der.int(20))))),
      "X509_BAD_PSS_PARAMS",
    ],
    // Extensions ::= SEQUENCE SIZE (1..MAX) OF Extension (RFC 5280 4.1).
    [
      "an empty extensions SEQUENCE",
      () => parseCertificate(certificate({ trailing: [der.explicit(3, der.seq())] })),
      "DER_MISSING",
    ],
    [
      "an extensions [3] without its SEQUENCE",
      () => parseCertificate(certificate({ trailing: [der.explicit(3, new Uint8Array())] })),
      "DER_MISSING",
    ],
    // RFC 5280 4.1.2.8 / 4.1.2.9: unique identifiers only from v2, extensions only in v3.
    [
      "an issuerUniqueID in a v1 certificate",
      () => parseCertificate(certificate({ version: null, trailing: [encodeTlv(0x81, Uint8Array.of(0))] })),
      "X509_BAD_VERSION",
    ],
    [
      "a subjectUniqueID in a v1 certificate",
      () => parseCertificate(certificate({ version: null, trailing: [encodeTlv(0x82, Uint8Array.of(0))] })),
      "X509_BAD_VERSION",
    ],
    [
      "extensions in a v1 certificate",
      () => parseCertificate(certificate({ version: null, trailing: [extensions(keyUsage)] })),
      "X509_BAD_VERSION",
    ],
    [
      "an extension with a field after extnValue",
      () => parseCertificate(certificate({ trailing: [rawExtension(der.oid(X509_OID.keyUsage), usage, der.null())] })),
      "DER_TRAILING_DATA",
    ],
    [
      "a Name with an empty RelativeDistinguishedName (SET SIZE (1..MAX))",
      () => parseCertificate(certificate({ issuer: der.seq(der.set()) })),
      "X509_BAD_NAME",
    ],
    [
      "a Name attribute with a field after its value (AttributeTypeAndValue is type and value only)",
      () =>
        parseCertificate(
          certificate({
            issuer: der.seq(der.set(der.seq(der.oid(X509_OID.commonName), der.utf8("A"), der.utf8("B")))),
          }),
        ),
      "X509_BAD_NAME",
    ],
    // RFC 5280 4.2.1.9: no pathLenConstraint unless cA is TRUE.
    [
      "a pathLenConstraint without cA",
      () => parseCertificate(certificate({ trailing: [extensions(basicConstraints(der.seq(der.int(0))))] })),
      "X509_BAD_BASIC_CONSTRAINTS",
    ],
    [
      "a basicConstraints with a field after pathLenConstraint",
      () =>
        parseCertificate(
          certificate({ trailing: [extensions(basicConstraints(der.seq(der.boolean(true), der.int(0), der.int(1))))] }),
        ),
      "DER_TRAILING_DATA",
    ],
    [
      "RSASSA-PSS with a field twice",
      () => decodeSignatureAlgorithm(readDer(pss(der.explicit(0, sha384), der.explicit(0, sha384), mgf1(sha384)))),
      "X509_BAD_PSS_PARAMS",
    ],
    [
      "RSASSA-PSS with fields out of order",
      () => decodeSignatureAlgorithm(readDer(pss(mgf1(sha384), der.explicit(0, sha384)))),
      "X509_BAD_PSS_PARAMS",
    ],
    [
      "an ECDSA signature of three INTEGERs",
      () => ecdsaDerToRaw(der.seq(der.int(1), der.int(2), der.int(3)), "P-256"),
      "X509_BAD_SIGNATURE",
    ],
    [
      "an ECDSA signature whose r has a redundant leading 00",
      () => ecdsaDerToRaw(der.seq(encodeTlv(0x02, Uint8Array.of(0, 0, 1)), der.int(2)), "P-256"),
      "DER_BAD_INTEGER",
    ],
    [
      "an ECDSA signature whose s is negative",
      () => ecdsaDerToRaw(der.seq(der.int(1), encodeTlv(0x02, Uint8Array.of(0x80, 1))), "P-256"),
      "DER_BAD_INTEGER",
    ],
  ];
  it.each(cases)("%s", (_name, run, code) => {
    expect(thrownCode(run)).toBe(code);
  });

  it("refuses to verify an empty chain", async () => {
    await expect(verifyChain([], [], new Date("2026-01-01T00:00:00Z"))).rejects.toMatchObject({ code: "CHAIN_EMPTY" });
  });
});
