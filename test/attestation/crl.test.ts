/**
 * CRLs against RFC 5280 5.2/5.3 (attestation/x509.ts parseCrl, checkNotRevoked): the structure is
 * read strictly, and a CRL whose extensions limit or change what it says (a critical extension
 * the verifier does not process, a delta CRL, an issuingDistributionPoint scope) is not used as if
 * it were a complete CRL of its issuer. Keys and CRLs are made here, signed with node:crypto.
 */
import { constants, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { describe, expect, it } from "vitest";
import { encodeBitString, encodeTlv, encodeUnsignedInteger } from "../../attestation/der.ts";
import {
  der,
  type ExtensionSpec,
  encodeExtension,
  encodeName,
  encodeTime,
  signatureAlgorithmIdentifier,
  writeCertificate,
  X509_OID,
} from "../../attestation/sim/x509-writer.ts";
import { type Certificate, checkNotRevoked, parseCertificate, parseCrl } from "../../attestation/x509.ts";
import { codeOf, thrownCode } from "../helpers/attestation.ts";

const AT = new Date("2026-06-01T00:00:00Z");
const caKey = generateKeyPairSync("ec", { namedCurve: "P-256" });
const spki = (k: KeyObject) => new Uint8Array(k.export({ type: "spki", format: "der" }));
const caName = encodeName([["CN", "CRL Test CA"]]);
const signWith = (key: KeyObject) => (tbs: Uint8Array) => new Uint8Array(sign("sha256", tbs, key));

function certificate(spec: { serial: number; subject: string; extensions: ExtensionSpec[] }): Certificate {
  return parseCertificate(
    writeCertificate(
      {
        serial: Uint8Array.of(spec.serial >> 8, spec.serial & 0xff),
        signatureAlgorithm: "ecdsa-sha256",
        issuer: caName,
        subject: spec.subject === "CA" ? caName : encodeName([["CN", spec.subject]]),
        notBefore: new Date("2026-01-01T00:00:00Z"),
        notAfter: new Date("2027-01-01T00:00:00Z"),
        spki: spki(
          spec.subject === "CA" ? caKey.publicKey : generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey,
        ),
        extensions: spec.extensions,
      },
      signWith(caKey.privateKey),
    ),
  );
}
const basicConstraints = (ca: boolean) => ({
  oid: X509_OID.basicConstraints,
  critical: true,
  value: ca ? der.seq(der.boolean(true)) : der.seq(),
});
const keyUsage = (bits: number) => ({ oid: X509_OID.keyUsage, critical: true, value: der.bits(Uint8Array.of(bits)) });
const ca = certificate({ serial: 1, subject: "CA", extensions: [basicConstraints(true), keyUsage(0x06)] });
const leaf = certificate({ serial: 0x1234, subject: "Leaf", extensions: [basicConstraints(false), keyUsage(0x80)] });
/** A CA the CA issued (serial 0x2345): the certificate a CA-only CRL covers. */
const subCa = certificate({ serial: 0x2345, subject: "Sub CA", extensions: [basicConstraints(true), keyUsage(0x06)] });

const crlNumber = { oid: "2.5.29.20", critical: false, value: der.int(7) };
const reason = (code: number) => ({ oid: "2.5.29.21", critical: false, value: der.enumerated(code) });
const ecdsaSha256 = signatureAlgorithmIdentifier("ecdsa-sha256");

interface CrlShape {
  /** The version INTEGER; null leaves the field out (a v1 CRL). Default 1 (v2). */
  version?: number | null;
  innerAlgorithm?: Uint8Array;
  revoked?: { serial: number; extensions?: ExtensionSpec[] }[];
  /** Tag of the revokedCertificates field (0x30; a SET is 0x31). */
  revokedTag?: number;
  /** Writes revokedCertificates even when it has no entry (an empty SEQUENCE). */
  emptyRevoked?: boolean;
  extensions?: ExtensionSpec[];
  /** The crlExtensions [0] field as given, in place of one made of `extensions`. */
  crlExtensionsField?: Uint8Array;
}

/** A TBSCertList of this shape, signed by the CA. */
function crl(shape: CrlShape = {}): Uint8Array {
  const entries = (shape.revoked ?? []).map((r) =>
    der.seq(
      encodeUnsignedInteger(Uint8Array.of(r.serial >> 8, r.serial & 0xff)),
      encodeTime(new Date("2026-05-01T00:00:00Z")),
      ...(r.extensions === undefined ? [] : [der.seq(...r.extensions.map(encodeExtension))]),
    ),
  );
  const extensions = shape.extensions ?? [crlNumber];
  const tbs = der.seq(
    ...(shape.version === null ? [] : [der.int(shape.version ?? 1)]),
    shape.innerAlgorithm ?? ecdsaSha256,
    caName,
    encodeTime(new Date("2026-05-01T00:00:00Z")),
    encodeTime(new Date("2026-07-01T00:00:00Z")),
    ...(entries.length > 0 || shape.emptyRevoked === true
      ? [encodeTlv(shape.revokedTag ?? 0x30, der.seq(...entries).subarray(2))]
      : []),
    ...(shape.crlExtensionsField !== undefined
      ? [shape.crlExtensionsField]
      : extensions.length > 0
        ? [der.explicit(0, der.seq(...extensions.map(encodeExtension)))]
        : []),
  );
  return der.seq(tbs, ecdsaSha256, encodeBitString(signWith(caKey.privateKey)(tbs)));
}

const check = (bytes: Uint8Array, cert: Certificate = leaf) =>
  codeOf(checkNotRevoked(cert, parseCrl(bytes), ca, AT, cert === leaf ? "leaf" : "sub CA"));
const revokesLeaf = { serial: 0x1234, extensions: [reason(1)] };
const idp = (...fields: Uint8Array[]) => ({ oid: "2.5.29.28", critical: true, value: der.seq(...fields) });
const TRUE = Uint8Array.of(0xff);

describe("CRL extensions (RFC 5280 5.2, 5.3)", () => {
  it("uses a CRL with the non-critical CRL and entry extensions Intel writes (cRLNumber, reasonCode)", async () => {
    expect(await check(crl({ revoked: [revokesLeaf] }))).toBe("CERT_REVOKED");
    expect(await check(crl({ revoked: [{ serial: 0x9999, extensions: [reason(1)] }] }))).toBe("ACCEPTED");
    const parsed = parseCrl(crl({ revoked: [revokesLeaf] }));
    expect(parsed.version).toBe(2);
    expect([...parsed.extensions.keys()]).toEqual(["2.5.29.20"]);
    expect(parsed.entries).toEqual([{ serial: "1234", extensions: new Map([["2.5.29.21", expect.anything()]]) }]);
  });

  it("refuses a CRL with a critical CRL extension it does not process, naming it", async () => {
    const unknown = { oid: "1.2.3.4", critical: true, value: der.null() };
    expect(await check(crl({ extensions: [crlNumber, unknown] }))).toBe("CRL_UNKNOWN_CRITICAL_EXTENSION");
    await expect(checkNotRevoked(leaf, parseCrl(crl({ extensions: [unknown] })), ca, AT, "leaf")).rejects.toThrow(
      'CRL from "CN=CRL Test CA": critical CRL extension 1.2.3.4',
    );
    // The same extension, not critical, may be ignored.
    expect(await check(crl({ extensions: [{ ...unknown, critical: false }] }))).toBe("ACCEPTED");
  });

  it("refuses a CRL with a critical entry extension (e.g. certificateIssuer of an indirect CRL)", async () => {
    const certificateIssuer = {
      oid: "2.5.29.29",
      critical: true,
      value: der.seq(encodeTlv(0xa4, encodeName([["CN", "Another CA"]]))),
    };
    expect(await check(crl({ revoked: [{ serial: 0x1234, extensions: [certificateIssuer] }] }))).toBe(
      "CRL_UNKNOWN_CRITICAL_EXTENSION",
    );
  });

  it("refuses a delta CRL, critical or not: it lists changes, not every revoked serial", async () => {
    for (const critical of [true, false]) {
      const delta = { oid: "2.5.29.27", critical, value: der.int(5) };
      expect(await check(crl({ extensions: [crlNumber, delta] }))).toBe("CRL_DELTA_UNSUPPORTED");
    }
  });

  it("honours an issuingDistributionPoint that covers only CA or only end-entity certificates", async () => {
    const onlyCa = idp(encodeTlv(0x82, TRUE));
    const onlyUsers = idp(encodeTlv(0x81, TRUE));
    // A CA-only CRL that does not list the leaf says nothing about it.
    expect(await check(crl({ extensions: [crlNumber, onlyCa] }))).toBe("CRL_SCOPE_MISMATCH");
    expect(await check(crl({ extensions: [crlNumber, onlyCa], revoked: [{ serial: 0x2345 }] }), subCa)).toBe(
      "CERT_REVOKED",
    );
    expect(await check(crl({ extensions: [crlNumber, onlyUsers] }), subCa)).toBe("CRL_SCOPE_MISMATCH");
    expect(await check(crl({ extensions: [crlNumber, onlyUsers], revoked: [revokesLeaf] }))).toBe("CERT_REVOKED");
    expect(await check(crl({ extensions: [crlNumber, onlyUsers] }))).toBe("ACCEPTED");
  });

  it("refuses an issuingDistributionPoint scoped any other way (distribution point, reasons, indirect)", async () => {
    const scopes = [
      der.explicit(0, der.explicit(0, encodeTlv(0x86, new TextEncoder().encode("https://crl.example/1.crl")))),
      encodeTlv(0x83, Uint8Array.of(0x07, 0x80)),
      encodeTlv(0x84, TRUE),
      encodeTlv(0x85, TRUE),
    ];
    for (const scope of scopes) {
      expect(await check(crl({ extensions: [crlNumber, idp(scope)], revoked: [revokesLeaf] }))).toBe(
        "CRL_SCOPE_UNSUPPORTED",
      );
    }
  });
});

describe("CRL structure", () => {
  it("refuses a version other than v2, and extensions in a v1 CRL", () => {
    expect(thrownCode(() => parseCrl(crl({ version: 7 })))).toBe("CRL_BAD_VERSION");
    expect(thrownCode(() => parseCrl(crl({ version: 0 })))).toBe("CRL_BAD_VERSION");
    expect(thrownCode(() => parseCrl(crl({ version: null })))).toBe("CRL_BAD_VERSION");
    expect(parseCrl(crl({ version: null, extensions: [] })).version).toBe(1);
  });

  it("refuses a CRL whose outer signature algorithm is not its TBS's", () => {
    expect(thrownCode(() => parseCrl(crl({ innerAlgorithm: signatureAlgorithmIdentifier("ecdsa-sha384") })))).toBe(
      "X509_ALGORITHM_MISMATCH",
    );
  });

  it("refuses an empty revokedCertificates, crlExtensions or crlEntryExtensions (RFC 5280 5.1: absent when empty)", () => {
    // RFC 5280 5.1.2.6: "When there are no revoked certificates, the revoked certificates list MUST be absent."
    expect(thrownCode(() => parseCrl(crl({ emptyRevoked: true })))).toBe("DER_MISSING");
    // Extensions ::= SEQUENCE SIZE (1..MAX) OF Extension, for the CRL's and for each entry's.
    expect(thrownCode(() => parseCrl(crl({ crlExtensionsField: der.explicit(0, der.seq()) })))).toBe("DER_MISSING");
    expect(thrownCode(() => parseCrl(crl({ revoked: [{ serial: 0x1234, extensions: [] }] })))).toBe("DER_MISSING");
    expect(() => parseCrl(crl({ emptyRevoked: true }))).toThrow(
      "revokedCertificates: expected at least one entry (RFC 5280 5.1.2.6: leave the list out when no certificate is revoked), found an empty SEQUENCE",
    );
  });

  it("refuses a CRL extension whose critical FALSE is encoded (DEFAULT FALSE: DER leaves it out, X.690 11.5)", () => {
    const explicitFalse = der.seq(der.oid("2.5.29.20"), der.boolean(false), der.octets(der.int(7)));
    expect(thrownCode(() => parseCrl(crl({ crlExtensionsField: der.explicit(0, der.seq(explicitFalse)) })))).toBe(
      "DER_BAD_BOOLEAN",
    );
  });

  it("reads an issuingDistributionPoint strictly: fields once, in order, no DEFAULT FALSE encoded, not empty, one only-scope", () => {
    const FALSE = Uint8Array.of(0x00);
    const parse = (...fields: Uint8Array[]) =>
      thrownCode(() => parseCrl(crl({ extensions: [crlNumber, idp(...fields)] })));
    expect(parse(encodeTlv(0x81, TRUE))).toBe("RETURNED");
    // Each BOOLEAN is DEFAULT FALSE.
    for (const tag of [0x81, 0x82, 0x84, 0x85]) expect(parse(encodeTlv(tag, FALSE))).toBe("DER_BAD_BOOLEAN");
    // Context tags [0]..[5] ascend, each at most once.
    expect(parse(encodeTlv(0x82, TRUE), encodeTlv(0x81, TRUE))).toBe("DER_UNEXPECTED_TAG");
    expect(parse(encodeTlv(0x81, TRUE), encodeTlv(0x81, TRUE))).toBe("DER_UNEXPECTED_TAG");
    expect(parse(encodeTlv(0x84, TRUE), encodeTlv(0x83, Uint8Array.of(0x07, 0x80)))).toBe("DER_UNEXPECTED_TAG");
    expect(parse(encodeTlv(0x86, TRUE))).toBe("DER_UNEXPECTED_TAG");
    // RFC 5280 5.2.5: at most one of onlyContainsUserCerts [1], onlyContainsCACerts [2], onlyContainsAttributeCerts [5].
    expect(parse(encodeTlv(0x81, TRUE), encodeTlv(0x82, TRUE))).toBe("CRL_BAD_SCOPE");
    expect(parse(encodeTlv(0x81, TRUE), encodeTlv(0x85, TRUE))).toBe("CRL_BAD_SCOPE");
    expect(parse(encodeTlv(0x82, TRUE), encodeTlv(0x85, TRUE))).toBe("CRL_BAD_SCOPE");
    expect(parse(encodeTlv(0x82, TRUE), encodeTlv(0x84, TRUE))).toBe("RETURNED");
    // RFC 5280 5.2.5: "MUST NOT issue CRLs where the DER encoding of the issuing distribution point extension is an empty sequence".
    expect(parse()).toBe("DER_MISSING");
  });

  it("refuses revokedCertificates that is not a SEQUENCE, rather than reading a CRL that revokes as one that does not", () => {
    expect(thrownCode(() => parseCrl(crl({ revoked: [revokesLeaf], revokedTag: 0x31 })))).toBe("DER_UNEXPECTED_TAG");
  });
});

describe("CRL signer", () => {
  /** A CRL of a self-signed issuer with these extensions (an EC key, or RSA of `rsaBits`), checked for the leaf. */
  const signedBy = (extensions: ExtensionSpec[], rsaBits?: number) => {
    const key =
      rsaBits === undefined
        ? generateKeyPairSync("ec", { namedCurve: "P-256" })
        : generateKeyPairSync("rsa", { modulusLength: rsaBits });
    const algorithm = rsaBits === undefined ? "ecdsa-sha256" : "rsa-pss-sha384";
    const signer = (tbs: Uint8Array) =>
      rsaBits === undefined
        ? signWith(key.privateKey)(tbs)
        : new Uint8Array(
            sign("sha384", tbs, { key: key.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 }),
          );
    const name = encodeName([["CN", "CRL Signer"]]);
    const issuer = parseCertificate(
      writeCertificate(
        {
          serial: Uint8Array.of(9),
          signatureAlgorithm: algorithm,
          issuer: name,
          subject: name,
          notBefore: new Date("2026-01-01T00:00:00Z"),
          notAfter: new Date("2027-01-01T00:00:00Z"),
          spki: spki(key.publicKey),
          extensions,
        },
        signer,
      ),
    );
    const alg = signatureAlgorithmIdentifier(algorithm);
    const tbs = der.seq(
      der.int(1),
      alg,
      name,
      encodeTime(new Date("2026-05-01T00:00:00Z")),
      encodeTime(new Date("2026-07-01T00:00:00Z")),
    );
    const bytes = der.seq(tbs, alg, encodeBitString(signer(tbs)));
    return codeOf(checkNotRevoked(leaf, parseCrl(bytes), issuer, AT, "leaf"));
  };

  it("must be a CA whose keyUsage, when present, includes cRLSign", async () => {
    expect(await signedBy([basicConstraints(true), keyUsage(0x06)])).toBe("ACCEPTED");
    expect(await signedBy([basicConstraints(true)])).toBe("ACCEPTED");
    expect(await signedBy([basicConstraints(true), keyUsage(0x04)])).toBe("CRL_ISSUER_NOT_AUTHORIZED");
    expect(await signedBy([basicConstraints(false), keyUsage(0x82)])).toBe("CRL_ISSUER_NOT_AUTHORIZED");
    expect(await signedBy([keyUsage(0x82)])).toBe("CRL_ISSUER_NOT_AUTHORIZED");
  });

  it("must not sign with an RSA key under 2048 bits", async () => {
    const issuer = [basicConstraints(true), keyUsage(0x06)];
    expect(await signedBy(issuer, 2048)).toBe("ACCEPTED");
    expect(await signedBy(issuer, 1024)).toBe("CERT_KEY_TOO_SMALL");
  });
});
