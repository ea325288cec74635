/**
 * INSECURE simulator: writes X.509 v3 certificates (DER) with the generic writers of der.ts, so
 * the simulated AMD and Intel hierarchies have exactly the certificate shapes of the real ones.
 * Only the simulator signs anything; production code only reads certificates (x509.ts).
 */
import { concatBytes } from "../bytes.ts";
import { encodeBitString, encodeOid, encodeSequence, encodeTlv, encodeUnsignedInteger, TAG } from "../der.ts";

const encoder = new TextEncoder();

export const X509_OID = {
  rsassaPss: "1.2.840.113549.1.1.10",
  sha384: "2.16.840.1.101.3.4.2.2",
  mgf1: "1.2.840.113549.1.1.8",
  ecdsaWithSha256: "1.2.840.10045.4.3.2",
  ecdsaWithSha384: "1.2.840.10045.4.3.3",
  subjectKeyIdentifier: "2.5.29.14",
  keyUsage: "2.5.29.15",
  basicConstraints: "2.5.29.19",
  crlDistributionPoints: "2.5.29.31",
  authorityKeyIdentifier: "2.5.29.35",
  commonName: "2.5.4.3",
  countryName: "2.5.4.6",
  localityName: "2.5.4.7",
  stateOrProvinceName: "2.5.4.8",
  organizationName: "2.5.4.10",
  organizationalUnitName: "2.5.4.11",
} as const;

export const der = {
  utf8: (text: string) => encodeTlv(TAG.UTF8_STRING, encoder.encode(text)),
  printable: (text: string) => encodeTlv(TAG.PRINTABLE_STRING, encoder.encode(text)),
  ia5: (text: string) => encodeTlv(TAG.IA5_STRING, encoder.encode(text)),
  octets: (bytes: Uint8Array) => encodeTlv(TAG.OCTET_STRING, bytes),
  boolean: (value: boolean) => encodeTlv(TAG.BOOLEAN, Uint8Array.of(value ? 0xff : 0x00)),
  null: () => encodeTlv(TAG.NULL, new Uint8Array()),
  /** Small non-negative INTEGER. */
  int: (value: number) => encodeUnsignedInteger(bigEndian(value)),
  /** Small ENUMERATED (0..127). */
  enumerated: (value: number) => {
    if (!Number.isInteger(value) || value < 0 || value > 127) throw new Error(`bad ENUMERATED ${value}`);
    return encodeTlv(0x0a, Uint8Array.of(value));
  },
  explicit: (tagNumber: number, content: Uint8Array) => encodeTlv(0xa0 | tagNumber, content),
  set: (...items: Uint8Array[]) => encodeTlv(TAG.SET, concatBytes(...items)),
  seq: encodeSequence,
  oid: encodeOid,
  bits: encodeBitString,
};

function bigEndian(value: number): Uint8Array {
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`bad integer ${value}`);
  const bytes: number[] = [];
  for (let v = value; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Uint8Array.from(bytes.length === 0 ? [0] : bytes);
}

/** Attribute types in the order they appear in the Name. `C` is a PrintableString, others UTF8. */
export type NameAttribute = readonly ["OU" | "C" | "L" | "ST" | "O" | "CN", string];

const NAME_OIDS: Record<NameAttribute[0], string> = {
  OU: X509_OID.organizationalUnitName,
  C: X509_OID.countryName,
  L: X509_OID.localityName,
  ST: X509_OID.stateOrProvinceName,
  O: X509_OID.organizationName,
  CN: X509_OID.commonName,
};

export function encodeName(attributes: readonly NameAttribute[]): Uint8Array {
  return encodeSequence(
    ...attributes.map(([type, value]) =>
      der.set(encodeSequence(encodeOid(NAME_OIDS[type]), type === "C" ? der.printable(value) : der.utf8(value))),
    ),
  );
}

/** UTCTime before 2050, GeneralizedTime from 2050 on (RFC 5280 §4.1.2.5). Whole seconds. */
export function encodeTime(date: Date): Uint8Array {
  const iso = date.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  const year = date.getUTCFullYear();
  if (year >= 1950 && year < 2050) return encodeTlv(TAG.UTC_TIME, encoder.encode(digits.slice(2)));
  return encodeTlv(TAG.GENERALIZED_TIME, encoder.encode(digits));
}

export interface ExtensionSpec {
  readonly oid: string;
  readonly critical: boolean;
  /** The DER placed inside the extnValue OCTET STRING. */
  readonly value: Uint8Array;
}

export function encodeExtension(ext: ExtensionSpec): Uint8Array {
  return ext.critical
    ? encodeSequence(encodeOid(ext.oid), der.boolean(true), der.octets(ext.value))
    : encodeSequence(encodeOid(ext.oid), der.octets(ext.value));
}

export type SimulatedSignatureAlgorithm = "rsa-pss-sha384" | "ecdsa-sha256" | "ecdsa-sha384";

/** AlgorithmIdentifier exactly as AMD writes RSASSA-PSS (explicit hash, MGF1, salt 48, trailer 1). */
export function signatureAlgorithmIdentifier(alg: SimulatedSignatureAlgorithm): Uint8Array {
  switch (alg) {
    case "rsa-pss-sha384": {
      const sha384 = encodeSequence(encodeOid(X509_OID.sha384), der.null());
      return encodeSequence(
        encodeOid(X509_OID.rsassaPss),
        encodeSequence(
          der.explicit(0, sha384),
          der.explicit(1, encodeSequence(encodeOid(X509_OID.mgf1), sha384)),
          der.explicit(2, der.int(48)),
          der.explicit(3, der.int(1)),
        ),
      );
    }
    case "ecdsa-sha256":
      return encodeSequence(encodeOid(X509_OID.ecdsaWithSha256));
    case "ecdsa-sha384":
      return encodeSequence(encodeOid(X509_OID.ecdsaWithSha384));
  }
}

export interface CertificateSpec {
  /** Unsigned big-endian serial magnitude (AMD's VCEK uses 0). */
  readonly serial: Uint8Array;
  readonly signatureAlgorithm: SimulatedSignatureAlgorithm;
  readonly issuer: Uint8Array;
  readonly subject: Uint8Array;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly spki: Uint8Array;
  readonly extensions: readonly ExtensionSpec[];
}

/** Builds the TBSCertificate and signs it with `sign` (which returns the signatureValue bytes). */
export function writeCertificate(spec: CertificateSpec, sign: (tbs: Uint8Array) => Uint8Array): Uint8Array {
  const algorithm = signatureAlgorithmIdentifier(spec.signatureAlgorithm);
  const tbs = encodeSequence(
    der.explicit(0, der.int(2)),
    encodeUnsignedInteger(spec.serial.length === 0 ? Uint8Array.of(0) : spec.serial),
    algorithm,
    spec.issuer,
    encodeSequence(encodeTime(spec.notBefore), encodeTime(spec.notAfter)),
    spec.subject,
    spec.spki,
    ...(spec.extensions.length > 0 ? [der.explicit(3, encodeSequence(...spec.extensions.map(encodeExtension)))] : []),
  );
  return encodeSequence(tbs, algorithm, encodeBitString(sign(tbs)));
}

/** PEM text of DER certificates, in order. */
export function toPem(ders: readonly Uint8Array[]): string {
  return ders
    .map((d) => {
      let bin = "";
      for (const b of d) bin += String.fromCharCode(b);
      const b64 = btoa(bin).replace(/(.{64})/g, "$1\n");
      return `-----BEGIN CERTIFICATE-----\n${b64.endsWith("\n") ? b64 : `${b64}\n`}-----END CERTIFICATE-----\n`;
    })
    .join("");
}

/** OIDs of the CRL extensions Intel's CRLs carry. */
const CRL_OID = {
  cRLNumber: "2.5.29.20",
  reasonCode: "2.5.29.21",
} as const;

/** CRLReason values (RFC 5280 §5.3.1) the simulator writes. */
export const CRL_REASON = { unspecified: 0, keyCompromise: 1, cACompromise: 2, superseded: 4 } as const;

export interface RevokedCertificateSpec {
  /** Unsigned big-endian serial magnitude of the revoked certificate. */
  readonly serial: Uint8Array;
  readonly revocationDate: Date;
  /** CRLReason entry extension (Intel writes keyCompromise, 1); omitted when undefined. */
  readonly reason?: number | undefined;
}

export interface CrlSpec {
  readonly signatureAlgorithm: SimulatedSignatureAlgorithm;
  /** The issuer Name DER: byte-identical to the issuing CA's subject. */
  readonly issuer: Uint8Array;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date;
  /** Revoked entries; the revokedCertificates field is omitted when empty (as Intel's root CRL). */
  readonly revoked?: readonly RevokedCertificateSpec[] | undefined;
  /** cRLNumber extension (default 1, as Intel's CRLs). */
  readonly crlNumber?: number | undefined;
  /** authorityKeyIdentifier keyIdentifier (the issuer's subjectKeyIdentifier); omitted when undefined. */
  readonly authorityKeyId?: Uint8Array | undefined;
}

/**
 * Builds a v2 TBSCertList in the shape of Intel's PCS CRLs (version 1, signature, issuer,
 * thisUpdate, nextUpdate, revokedCertificates with a CRLReason entry extension, and the cRLNumber
 * and authorityKeyIdentifier CRL extensions) and signs it with `sign`.
 */
export function writeCrl(spec: CrlSpec, sign: (tbs: Uint8Array) => Uint8Array): Uint8Array {
  const algorithm = signatureAlgorithmIdentifier(spec.signatureAlgorithm);
  const revoked = spec.revoked ?? [];
  const entries = revoked.map((entry) =>
    encodeSequence(
      encodeUnsignedInteger(entry.serial.length === 0 ? Uint8Array.of(0) : entry.serial),
      encodeTime(entry.revocationDate),
      ...(entry.reason === undefined
        ? []
        : [
            encodeSequence(
              encodeExtension({ oid: CRL_OID.reasonCode, critical: false, value: der.enumerated(entry.reason) }),
            ),
          ]),
    ),
  );
  const extensions: ExtensionSpec[] = [
    { oid: CRL_OID.cRLNumber, critical: false, value: der.int(spec.crlNumber ?? 1) },
  ];
  if (spec.authorityKeyId !== undefined) {
    extensions.push({
      oid: X509_OID.authorityKeyIdentifier,
      critical: false,
      value: encodeSequence(encodeTlv(0x80, spec.authorityKeyId)),
    });
  }
  const tbs = encodeSequence(
    der.int(1),
    algorithm,
    spec.issuer,
    encodeTime(spec.thisUpdate),
    encodeTime(spec.nextUpdate),
    ...(entries.length > 0 ? [encodeSequence(...entries)] : []),
    der.explicit(0, encodeSequence(...extensions.map(encodeExtension))),
  );
  return encodeSequence(tbs, algorithm, encodeBitString(sign(tbs)));
}
