/**
 * X.509 certificates and CRLs, as far as attestation needs them: strict DER parsing of the
 * fields we use, signature verification (RSASSA-PSS, RSASSA-PKCS1-v1_5, ECDSA) through crypto.ts,
 * validity windows at an injected time, and chain building to a pinned root.
 *
 * What it checks: structure; the issuer name of each certificate equals the subject of the next;
 * each signature under the next certificate's key; each certificate's validity at `at`; that every
 * issuer is a CA when it says so (basicConstraints, with its pathLenConstraint) — and for pinned
 * roots, that the root is self-signed and byte-identical to the pinned copy.
 * What it does not: name constraints, policy OIDs, key usage beyond CA, AKI/SKI (AMD's VCEK has
 * no AKI and serial 0, see the fixtures README, so neither is required), revocation unless a CRL
 * is given to `checkNotRevoked`. CRLs are used only when complete for the certificate checked: no
 * critical extension the verifier does not process, not a delta CRL, and no issuingDistributionPoint
 * scope other than CA-only / end-entity-only, which is honoured (RFC 5280 5.2).
 */
import { bytesEqual, toHex } from "./bytes.ts";
import { type Curve, type HashName, sha256, verifyEcdsa, verifyRsaPkcs1, verifyRsaPss } from "./crypto.ts";
import {
  type DerNode,
  decodeBitString,
  decodeOid,
  decodeSmallInteger,
  decodeTime,
  decodeUnsignedInteger,
  derChildren,
  derContent,
  derEncoding,
  encodeBitString,
  encodeOid,
  encodeSequence,
  encodeTlv,
  expectTag,
  readDerExact,
  TAG,
} from "./der.ts";
import { AttestationError, ParseError, VerifyError } from "./errors.ts";
import { describeUntrusted } from "./untrusted-text.ts";

export const OID = {
  rsaEncryption: "1.2.840.113549.1.1.1",
  rsassaPss: "1.2.840.113549.1.1.10",
  sha256WithRsa: "1.2.840.113549.1.1.11",
  sha384WithRsa: "1.2.840.113549.1.1.12",
  sha512WithRsa: "1.2.840.113549.1.1.13",
  ecPublicKey: "1.2.840.10045.2.1",
  ecdsaWithSha256: "1.2.840.10045.4.3.2",
  ecdsaWithSha384: "1.2.840.10045.4.3.3",
  ecdsaWithSha512: "1.2.840.10045.4.3.4",
  p256: "1.2.840.10045.3.1.7",
  p384: "1.3.132.0.34",
  sha256: "2.16.840.1.101.3.4.2.1",
  sha384: "2.16.840.1.101.3.4.2.2",
  sha512: "2.16.840.1.101.3.4.2.3",
  mgf1: "1.2.840.113549.1.1.8",
  basicConstraints: "2.5.29.19",
  keyUsage: "2.5.29.15",
  commonName: "2.5.4.3",
} as const;

/**
 * Extensions this verifier processes, and so may accept when marked critical (RFC 5280 4.2: a
 * certificate with a critical extension the verifier does not process must be rejected).
 */
const PROCESSED_EXTENSIONS: ReadonlySet<string> = new Set([OID.basicConstraints, OID.keyUsage]);

const HASH_BY_OID: Record<string, HashName> = {
  [OID.sha256]: "SHA-256",
  [OID.sha384]: "SHA-384",
  [OID.sha512]: "SHA-512",
};

export type SignatureAlgorithm =
  | { kind: "rsa-pss"; hash: HashName; saltLength: number }
  | { kind: "rsa-pkcs1"; hash: HashName }
  | { kind: "ecdsa"; hash: HashName };

export type PublicKeyInfo =
  | { kind: "rsa"; spki: Uint8Array; modulusBits: number }
  | { kind: "ec"; curve: Curve; spki: Uint8Array; point: Uint8Array };

export interface Extension {
  readonly critical: boolean;
  readonly value: Uint8Array;
}

export interface Certificate {
  readonly der: Uint8Array;
  readonly tbs: Uint8Array;
  readonly version: number;
  readonly serialNumber: Uint8Array;
  readonly issuer: string;
  readonly subject: string;
  readonly issuerDer: Uint8Array;
  readonly subjectDer: Uint8Array;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly publicKey: PublicKeyInfo;
  readonly signatureAlgorithm: SignatureAlgorithm;
  readonly signature: Uint8Array;
  readonly extensions: ReadonlyMap<string, Extension>;
  /** basicConstraints cA, or undefined when the extension is absent. */
  readonly isCA: boolean | undefined;
  /** basicConstraints pathLenConstraint, or undefined when absent. */
  readonly pathLen: number | undefined;
}

const NAME_LABELS: Record<string, string> = {
  [OID.commonName]: "CN",
  "2.5.4.6": "C",
  "2.5.4.7": "L",
  "2.5.4.8": "ST",
  "2.5.4.10": "O",
  "2.5.4.11": "OU",
  "1.2.840.113549.1.9.1": "E",
};

/** A DER BOOLEAN: one byte, 0x00 or 0xFF (BER's other non-zero values are not DER, so not guessed at). */
function derBoolean(node: DerNode, what: string): boolean {
  const content = derContent(node);
  if (content.length !== 1 || (content[0] !== 0x00 && content[0] !== 0xff)) {
    throw new ParseError(
      "DER_BAD_BOOLEAN",
      `${what}: expected a DER BOOLEAN (00 or ff), found ${content.length} byte(s) ${toHex(content.subarray(0, 4))}`,
    );
  }
  return content[0] === 0xff;
}

/**
 * A BOOLEAN whose ASN.1 says DEFAULT FALSE (an extension's critical, basicConstraints cA, the
 * issuingDistributionPoint flags): when present it can only be TRUE, since DER leaves a DEFAULT
 * value out (X.690 11.5), so an explicit FALSE is a second encoding of the same value.
 */
function derBooleanDefaultFalse(node: DerNode, what: string): true {
  if (!derBoolean(node, what)) {
    throw new ParseError(
      "DER_BAD_BOOLEAN",
      `${what}: expected the field left out when FALSE (its DEFAULT: DER encodes no default value, X.690 11.5), found an explicit FALSE at offset ${node.start}`,
    );
  }
  return true;
}

/** The elements of a SEQUENCE OF / SET OF whose ASN.1 says SIZE (1..MAX): an empty one is refused. */
function nonEmptyChildren(node: DerNode, what: string, rule: string): DerNode[] {
  const children = derChildren(node);
  if (children.length === 0) {
    throw new ParseError(
      "DER_MISSING",
      `${what}: expected at least one entry (${rule}), found an empty ${node.tag === TAG.SET ? "SET" : "SEQUENCE"} at offset ${node.start}`,
    );
  }
  return children;
}

/** A Name's attributes in order, as [type OID, value text]. */
function nameAttributes(node: DerNode): [string, string][] {
  const attributes: [string, string][] = [];
  for (const rdn of derChildren(expectTag(node, TAG.SEQUENCE, "Name"))) {
    const atvs = derChildren(expectTag(rdn, TAG.SET, "RelativeDistinguishedName"));
    if (atvs.length === 0) {
      throw new ParseError(
        "X509_BAD_NAME",
        `Name: expected each RelativeDistinguishedName to hold at least one attribute (SET SIZE (1..MAX)), found an empty SET at offset ${rdn.start}`,
      );
    }
    for (const atv of atvs) {
      const fields = derChildren(expectTag(atv, TAG.SEQUENCE, "AttributeTypeAndValue"));
      const [type, value] = fields;
      if (type === undefined || value === undefined || fields.length !== 2) {
        throw new ParseError(
          "X509_BAD_NAME",
          `Name: expected each AttributeTypeAndValue to hold 2 fields (type, value), found ${fields.length} at offset ${atv.start}`,
        );
      }
      const oid = decodeOid(expectTag(type, TAG.OID, "attribute type"));
      attributes.push([oid, new TextDecoder("utf-8", { fatal: false }).decode(derContent(value))]);
    }
  }
  return attributes;
}

/** A Name for display and errors ("CN=…,O=…"); values are not escaped, so never split it to read one. */
function decodeName(node: DerNode): string {
  return nameAttributes(node)
    .map(([oid, text]) => `${NAME_LABELS[oid] ?? oid}=${text}`)
    .join(",");
}

/** The first commonName of a DER Name (a certificate's `subjectDer` / `issuerDer`), or "" when it has none. */
export function commonNameOf(nameDer: Uint8Array): string {
  const attributes = nameAttributes(readDerExact(nameDer, TAG.SEQUENCE, "Name"));
  return attributes.find(([oid]) => oid === OID.commonName)?.[1] ?? "";
}

/**
 * Extensions ::= SEQUENCE SIZE (1..MAX) OF Extension (certificates, CRLs and CRL entries), by OID:
 * an empty one, a repeated OID, an explicit `critical FALSE` (its DEFAULT) or a field after
 * extnValue is refused.
 */
function decodeExtensions(node: DerNode | undefined, what: string): Map<string, Extension> {
  const extensions = new Map<string, Extension>();
  const list = expectTag(node, TAG.SEQUENCE, what);
  for (const ext of nonEmptyChildren(
    list,
    what,
    "Extensions ::= SEQUENCE SIZE (1..MAX), RFC 5280 4.1: leave the field out instead",
  )) {
    const parts = derChildren(expectTag(ext, TAG.SEQUENCE, "Extension"));
    const oid = decodeOid(expectTag(parts.shift(), TAG.OID, "extnID"));
    let critical = false;
    if (parts[0]?.tag === TAG.BOOLEAN)
      critical = derBooleanDefaultFalse(parts.shift() as DerNode, `extension ${oid} critical`);
    const value = derContent(expectTag(parts.shift(), TAG.OCTET_STRING, `extension ${oid}`)).slice();
    const extra = parts[0];
    if (extra !== undefined) {
      throw new ParseError(
        "DER_TRAILING_DATA",
        `extension ${oid}: expected extnID, critical and extnValue only, found more at offset ${extra.start}`,
      );
    }
    if (extensions.has(oid)) throw new ParseError("X509_DUPLICATE_EXTENSION", `extension ${oid} appears twice`);
    extensions.set(oid, { critical, value });
  }
  return extensions;
}

function decodeHashAlgorithm(node: DerNode, what: string): HashName {
  const [oidNode] = derChildren(expectTag(node, TAG.SEQUENCE, what));
  const oid = decodeOid(expectTag(oidNode, TAG.OID, what));
  const hash = HASH_BY_OID[oid];
  if (hash === undefined) throw new ParseError("X509_UNSUPPORTED_ALGORITHM", `${what}: unsupported hash OID ${oid}`);
  return hash;
}

/** Parses an AlgorithmIdentifier used for signatures. */
export function decodeSignatureAlgorithm(node: DerNode): SignatureAlgorithm {
  const [oidNode, params] = derChildren(expectTag(node, TAG.SEQUENCE, "signatureAlgorithm"));
  const oid = decodeOid(expectTag(oidNode, TAG.OID, "signatureAlgorithm"));
  switch (oid) {
    case OID.ecdsaWithSha256:
      return { kind: "ecdsa", hash: "SHA-256" };
    case OID.ecdsaWithSha384:
      return { kind: "ecdsa", hash: "SHA-384" };
    case OID.ecdsaWithSha512:
      return { kind: "ecdsa", hash: "SHA-512" };
    case OID.sha256WithRsa:
      return { kind: "rsa-pkcs1", hash: "SHA-256" };
    case OID.sha384WithRsa:
      return { kind: "rsa-pkcs1", hash: "SHA-384" };
    case OID.sha512WithRsa:
      return { kind: "rsa-pkcs1", hash: "SHA-512" };
    case OID.rsassaPss: {
      // RSASSA-PSS-params: [0] hash (default SHA-1), [1] MGF (default MGF1-SHA-1), [2] salt (default 20).
      // SHA-1 defaults are refused: we only accept explicit SHA-2 parameters with MGF1 on the same hash.
      if (params === undefined) throw new ParseError("X509_BAD_PSS_PARAMS", "RSASSA-PSS: parameters missing");
      let hash: HashName | undefined;
      let mgfHash: HashName | undefined;
      let saltLength = 20;
      let previousTag = -1;
      for (const field of derChildren(expectTag(params, TAG.SEQUENCE, "RSASSA-PSS-params"))) {
        if (field.tag <= previousTag) {
          throw new ParseError(
            "X509_BAD_PSS_PARAMS",
            `RSASSA-PSS: expected each field once, in order, found tag 0x${field.tag.toString(16)} after 0x${previousTag.toString(16)}`,
          );
        }
        previousTag = field.tag;
        const [inner] = derChildren(field);
        if (inner === undefined) throw new ParseError("X509_BAD_PSS_PARAMS", "RSASSA-PSS: empty parameter");
        if (field.tag === 0xa0) hash = decodeHashAlgorithm(inner, "RSASSA-PSS hashAlgorithm");
        else if (field.tag === 0xa1) {
          const [mgfOid, mgfParams] = derChildren(expectTag(inner, TAG.SEQUENCE, "maskGenAlgorithm"));
          if (decodeOid(expectTag(mgfOid, TAG.OID, "maskGenAlgorithm")) !== OID.mgf1 || mgfParams === undefined) {
            throw new ParseError("X509_BAD_PSS_PARAMS", "RSASSA-PSS: mask generation must be MGF1");
          }
          mgfHash = decodeHashAlgorithm(mgfParams, "MGF1 hash");
        } else if (field.tag === 0xa2) {
          saltLength = decodeSmallInteger(inner, "RSASSA-PSS saltLength");
          if (saltLength === 20) {
            throw new ParseError(
              "X509_BAD_PSS_PARAMS",
              "RSASSA-PSS saltLength: expected the field left out when 20 (its DEFAULT: DER encodes no default value, X.690 11.5), found an explicit 20",
            );
          }
        } else if (field.tag === 0xa3) {
          // trailerField 1 is its DEFAULT (trailerFieldBC), so DER would leave it out; yet AMD's
          // ARK, ASK, ASVK and VCEK/VLEK certificates encode it (fixtures amd-roots/ark-milan.pem,
          // ask-milan.pem, snp/milan-virtee-v2-vcek.der and every other AMD one), so an explicit 1
          // is read, as the only value there is.
          if (decodeSmallInteger(inner, "RSASSA-PSS trailerField") !== 1) {
            throw new ParseError("X509_BAD_PSS_PARAMS", "RSASSA-PSS: trailerField must be 1");
          }
        } else throw new ParseError("X509_BAD_PSS_PARAMS", `RSASSA-PSS: unknown field tag 0x${field.tag.toString(16)}`);
      }
      if (hash === undefined || mgfHash !== hash) {
        throw new ParseError(
          "X509_BAD_PSS_PARAMS",
          "RSASSA-PSS: expected explicit SHA-2 hash with MGF1 on the same hash",
        );
      }
      return { kind: "rsa-pss", hash, saltLength };
    }
    default:
      throw new ParseError("X509_UNSUPPORTED_ALGORITHM", `signatureAlgorithm: unsupported OID ${oid}`);
  }
}

/** Decodes a SubjectPublicKeyInfo. RSA-PSS keys are re-encoded as rsaEncryption for WebCrypto. */
export function decodePublicKeyInfo(node: DerNode): PublicKeyInfo {
  const [algorithm, keyBits] = derChildren(expectTag(node, TAG.SEQUENCE, "subjectPublicKeyInfo"));
  const [oidNode, params] = derChildren(expectTag(algorithm, TAG.SEQUENCE, "SPKI algorithm"));
  const oid = decodeOid(expectTag(oidNode, TAG.OID, "SPKI algorithm"));
  const key = decodeBitString(expectTag(keyBits, TAG.BIT_STRING, "subjectPublicKey"), "subjectPublicKey");
  if (oid === OID.ecPublicKey) {
    const curveOid = decodeOid(expectTag(params, TAG.OID, "EC curve"));
    const curve: Curve | undefined = curveOid === OID.p256 ? "P-256" : curveOid === OID.p384 ? "P-384" : undefined;
    if (curve === undefined)
      throw new ParseError("X509_UNSUPPORTED_ALGORITHM", `EC key: unsupported curve ${curveOid}`);
    const size = curve === "P-256" ? 32 : 48;
    if (key.length !== 1 + 2 * size || key[0] !== 0x04) {
      throw new ParseError("X509_BAD_KEY", `EC key: expected an uncompressed ${curve} point of ${1 + 2 * size} bytes`);
    }
    return { kind: "ec", curve, spki: derEncoding(node).slice(), point: key.slice() };
  }
  if (oid === OID.rsaEncryption || oid === OID.rsassaPss) {
    const [modulus] = derChildren(readDerExact(key, TAG.SEQUENCE, "RSAPublicKey"));
    const n = decodeUnsignedInteger(expectTag(modulus, TAG.INTEGER, "RSA modulus"), "RSA modulus");
    const spki =
      oid === OID.rsaEncryption
        ? derEncoding(node).slice()
        : encodeSequence(
            encodeSequence(encodeOid(OID.rsaEncryption), encodeTlv(TAG.NULL, new Uint8Array())),
            encodeBitString(key),
          );
    return { kind: "rsa", spki, modulusBits: n.length * 8 - Math.clz32(n[0] as number) + 24 };
  }
  throw new ParseError("X509_UNSUPPORTED_ALGORITHM", `SPKI: unsupported key algorithm ${oid}`);
}

interface Signed {
  /** The to-be-signed SEQUENCE and its fields. */
  readonly tbsSeq: DerNode;
  readonly fields: DerNode[];
  readonly sigAlgNode: DerNode | undefined;
  readonly sigNode: DerNode | undefined;
}

/** A Certificate or CertificateList: SEQUENCE { tbs SEQUENCE, signatureAlgorithm, signatureValue }. */
function readSigned(der: Uint8Array, what: string, tbsWhat: string): Signed {
  const parts = derChildren(readDerExact(der, TAG.SEQUENCE, what));
  const [tbsNode, sigAlgNode, sigNode, extra] = parts;
  if (extra !== undefined) {
    throw new ParseError(
      "DER_TRAILING_DATA",
      `${what}: expected 3 fields (${tbsWhat}, signatureAlgorithm, signatureValue), found ${parts.length}`,
    );
  }
  const tbsSeq = expectTag(tbsNode, TAG.SEQUENCE, tbsWhat);
  return { tbsSeq, fields: derChildren(tbsSeq), sigAlgNode, sigNode };
}

/** The outer signatureAlgorithm (which must equal the TBS's `inner` one) and signatureValue. */
function readSignature(
  signed: Signed,
  inner: SignatureAlgorithm,
  what: string,
): { signatureAlgorithm: SignatureAlgorithm; signature: Uint8Array } {
  const signatureAlgorithm = decodeSignatureAlgorithm(expectTag(signed.sigAlgNode, TAG.SEQUENCE, "signatureAlgorithm"));
  if (JSON.stringify(signatureAlgorithm) !== JSON.stringify(inner)) {
    throw new ParseError("X509_ALGORITHM_MISMATCH", `${what}: outer and inner signature algorithms differ`);
  }
  const signature = decodeBitString(expectTag(signed.sigNode, TAG.BIT_STRING, "signatureValue"), "signatureValue");
  return { signatureAlgorithm, signature: signature.slice() };
}

function parseCertificateUnchecked(der: Uint8Array): Certificate {
  const signed = readSigned(der, "Certificate", "tbsCertificate");
  const { tbsSeq, fields } = signed;
  let i = 0;
  let version = 1;
  if (fields[0]?.tag === 0xa0) {
    const [v, extra] = derChildren(fields[0]);
    if (extra !== undefined)
      throw new ParseError(
        "DER_TRAILING_DATA",
        `version [0]: expected one INTEGER, found more at offset ${extra.start}`,
      );
    version = decodeSmallInteger(expectTag(v, TAG.INTEGER, "version"), "version") + 1;
    if (version > 3)
      throw new ParseError("X509_BAD_VERSION", `version: expected v1, v2 or v3 (0..2), found ${version - 1}`);
    if (version === 1) {
      throw new ParseError(
        "X509_BAD_VERSION",
        "version: expected the field left out for v1 (its DEFAULT: DER encodes no default value, X.690 11.5), found an explicit v1 (INTEGER 0)",
      );
    }
    i = 1;
  }
  const serialNumber = decodeUnsignedInteger(expectTag(fields[i], TAG.INTEGER, "serialNumber"), "serialNumber");
  const innerAlg = decodeSignatureAlgorithm(expectTag(fields[i + 1], TAG.SEQUENCE, "tbs signature"));
  const issuerNode = expectTag(fields[i + 2], TAG.SEQUENCE, "issuer");
  const validity = derChildren(expectTag(fields[i + 3], TAG.SEQUENCE, "validity"));
  const [notBeforeNode, notAfterNode] = validity;
  if (notBeforeNode === undefined || notAfterNode === undefined || validity.length > 2) {
    throw new ParseError("X509_BAD_VALIDITY", "validity: expected notBefore and notAfter");
  }
  const subjectNode = expectTag(fields[i + 4], TAG.SEQUENCE, "subject");
  const publicKey = decodePublicKeyInfo(expectTag(fields[i + 5], TAG.SEQUENCE, "subjectPublicKeyInfo"));
  let extensions: ReadonlyMap<string, Extension> = new Map();
  // Then only issuerUniqueID [1], subjectUniqueID [2] (ignored) and extensions [3], each once, in order.
  const optional = [0x81, 0x82, 0xa3];
  let next = 0;
  for (const field of fields.slice(i + 6)) {
    const at = optional.indexOf(field.tag, next);
    if (at === -1) {
      throw new ParseError(
        "DER_UNEXPECTED_TAG",
        `tbsCertificate: expected issuerUniqueID (0x81), subjectUniqueID (0x82) or extensions (0xa3) after the key, each once and in order, found tag 0x${field.tag.toString(16)} at offset ${field.start}`,
      );
    }
    next = at + 1;
    if (field.tag !== 0xa3) {
      // RFC 5280 4.1.2.8: unique identifiers "MUST only appear if the version is 2 or 3".
      if (version === 1) {
        throw new ParseError(
          "X509_BAD_VERSION",
          `version: expected v2 or v3 in a certificate with ${field.tag === 0x81 ? "issuerUniqueID" : "subjectUniqueID"}, found v1`,
        );
      }
      continue;
    }
    if (version !== 3)
      throw new ParseError(
        "X509_BAD_VERSION",
        `version: expected v3 in a certificate with extensions, found v${version}`,
      );
    const [extSeq] = derChildren(field);
    extensions = decodeExtensions(extSeq, "extensions");
  }
  let isCA: boolean | undefined;
  let pathLen: number | undefined;
  const basicConstraints = extensions.get(OID.basicConstraints)?.value;
  if (basicConstraints !== undefined) {
    // BasicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLenConstraint INTEGER (0..MAX) OPTIONAL }
    const fields = derChildren(readDerExact(basicConstraints, TAG.SEQUENCE, "basicConstraints"));
    const ca = fields[0]?.tag === TAG.BOOLEAN ? fields.shift() : undefined;
    isCA = ca !== undefined && derBooleanDefaultFalse(ca, "basicConstraints cA");
    const length = fields.shift();
    if (length !== undefined) {
      pathLen = decodeSmallInteger(expectTag(length, TAG.INTEGER, "pathLenConstraint"), "pathLenConstraint");
      // RFC 5280 4.2.1.9: "CAs MUST NOT include the pathLenConstraint field unless the cA boolean is asserted".
      if (!isCA) {
        throw new ParseError(
          "X509_BAD_BASIC_CONSTRAINTS",
          `basicConstraints: expected pathLenConstraint only with cA TRUE (RFC 5280 4.2.1.9), found pathLenConstraint ${pathLen} without cA`,
        );
      }
    }
    const extra = fields[0];
    if (extra !== undefined) {
      throw new ParseError(
        "DER_TRAILING_DATA",
        `basicConstraints: expected at most cA and pathLenConstraint, found more at offset ${extra.start}`,
      );
    }
  }
  const { signatureAlgorithm, signature } = readSignature(signed, innerAlg, "Certificate");
  return {
    der: der.slice(),
    tbs: derEncoding(tbsSeq).slice(),
    version,
    serialNumber,
    issuer: decodeName(issuerNode),
    subject: decodeName(subjectNode),
    issuerDer: derEncoding(issuerNode).slice(),
    subjectDer: derEncoding(subjectNode).slice(),
    notBefore: decodeTime(notBeforeNode, "notBefore"),
    notAfter: decodeTime(notAfterNode, "notAfter"),
    publicKey,
    signatureAlgorithm,
    signature,
    extensions,
    isCA,
    pathLen,
  };
}

/** Parses one DER certificate. Any malformed input throws ParseError (codes X509_... and DER_...). */
export function parseCertificate(der: Uint8Array): Certificate {
  try {
    // Normalise to a plain Uint8Array: on a Node Buffer, `.slice()` would alias instead of copy.
    return parseCertificateUnchecked(new Uint8Array(der));
  } catch (error) {
    if (error instanceof AttestationError) throw error;
    throw new ParseError("X509_MALFORMED", "certificate: malformed DER", { cause: error });
  }
}

/** All certificates in a PEM text, in order. */
export function parsePemCertificates(pem: string): Certificate[] {
  const blocks = [...pem.matchAll(/-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/g)];
  if (blocks.length === 0) throw new ParseError("PEM_NO_CERTIFICATE", "PEM: no CERTIFICATE block found");
  return blocks.map((m) => parseCertificate(base64ToBytes((m[1] as string).replace(/\s+/g, ""))));
}

/** A certificate given as PEM or DER bytes. */
export function parseCertificateBytes(bytes: Uint8Array): Certificate {
  const head = new TextDecoder().decode(bytes.subarray(0, 64));
  if (head.includes("-----BEGIN")) {
    const [first] = parsePemCertificates(new TextDecoder().decode(bytes));
    return first as Certificate;
  }
  return parseCertificate(bytes);
}

export function base64ToBytes(b64: string): Uint8Array {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64) || b64.length % 4 !== 0) {
    throw new ParseError("BAD_BASE64", "expected standard base64 text");
  }
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** ECDSA-Sig-Value (DER SEQUENCE of r, s) → raw fixed-size r||s. */
export function ecdsaDerToRaw(der: Uint8Array, curve: Curve): Uint8Array {
  const size = curve === "P-256" ? 32 : 48;
  const values = derChildren(readDerExact(der, TAG.SEQUENCE, "ECDSA signature"));
  if (values.length !== 2) {
    throw new ParseError(
      "X509_BAD_SIGNATURE",
      `ECDSA signature: expected 2 INTEGERs (r, s), found ${values.length} values`,
    );
  }
  const [r, s] = values;
  const out = new Uint8Array(2 * size);
  for (const [index, node] of [r, s].entries()) {
    const v = decodeUnsignedInteger(expectTag(node, TAG.INTEGER, "ECDSA signature"), "ECDSA signature");
    if (v.length > size)
      throw new ParseError("X509_BAD_SIGNATURE", `ECDSA signature: integer longer than ${size} bytes`);
    out.set(v, (index + 1) * size - v.length);
  }
  return out;
}

/** Verifies `signature` over `data` by `key` with `algorithm`. False on any mismatch. */
export async function verifySignature(
  key: PublicKeyInfo,
  algorithm: SignatureAlgorithm,
  signature: Uint8Array,
  data: Uint8Array,
): Promise<boolean> {
  if (algorithm.kind === "ecdsa") {
    if (key.kind !== "ec") return false;
    let raw: Uint8Array;
    try {
      raw = ecdsaDerToRaw(signature, key.curve);
    } catch {
      return false;
    }
    return verifyEcdsa({ curve: key.curve, hash: algorithm.hash, spki: key.spki, signature: raw, data });
  }
  if (key.kind !== "rsa") return false;
  if (algorithm.kind === "rsa-pss") {
    return verifyRsaPss({ hash: algorithm.hash, saltLength: algorithm.saltLength, spki: key.spki, signature, data });
  }
  return verifyRsaPkcs1({ hash: algorithm.hash, spki: key.spki, signature, data });
}

/** Checks `cert`'s validity window at `at`; throws VerifyError CERT_EXPIRED / CERT_NOT_YET_VALID. */
export function checkValidity(cert: Certificate, at: Date, role: string): void {
  if (at.getTime() < cert.notBefore.getTime()) {
    throw new VerifyError(
      "CERT_NOT_YET_VALID",
      `${role} certificate "${cert.subject}": not valid before ${cert.notBefore.toISOString()}, verification time ${at.toISOString()}`,
    );
  }
  if (at.getTime() > cert.notAfter.getTime()) {
    throw new VerifyError(
      "CERT_EXPIRED",
      `${role} certificate "${cert.subject}": expired ${cert.notAfter.toISOString()}, verification time ${at.toISOString()}`,
    );
  }
}

/**
 * Checks that `cert` is the kind of certificate its role needs, where a hierarchy says the kind by
 * name (Intel's root issues PCK CAs and its TCB signing certificate, told apart by subject CN): its
 * subject CN is one of `expected.commonNames`, and with `endEntity` its basicConstraints says cA
 * false. Throws VerifyError `code`, naming the certificate, the expected and the found value.
 */
export function checkSubjectRole(
  cert: Certificate,
  role: string,
  expected: { readonly commonNames: readonly string[]; readonly endEntity: boolean },
  code: string,
): void {
  const where = `${role} certificate "${cert.subject}"`;
  const cn = commonNameOf(cert.subjectDer);
  if (!expected.commonNames.includes(cn)) {
    const names = expected.commonNames.map((n) => `"${n}"`).join(" or ");
    throw new VerifyError(code, `${where}: subject CN expected ${names}, found ${describeUntrusted(cn)}`);
  }
  if (expected.endEntity && cert.isCA !== false) {
    throw new VerifyError(
      code,
      `${where}: basicConstraints expected cA false, found ${cert.isCA === undefined ? "no basicConstraints" : "cA true"}`,
    );
  }
}

/** Smallest RSA modulus accepted for a key whose signature is verified (NIST SP 800-131A; Go, browsers). */
const MIN_RSA_BITS = 2048;

/** Refuses an RSA signing key under MIN_RSA_BITS, whose signatures may be forged by factoring it. */
function checkKeyStrength(signer: Certificate, role: string): void {
  if (signer.publicKey.kind === "rsa" && signer.publicKey.modulusBits < MIN_RSA_BITS) {
    throw new VerifyError(
      "CERT_KEY_TOO_SMALL",
      `${role} certificate "${signer.subject}": RSA key expected at least ${MIN_RSA_BITS} bits, found ${signer.publicKey.modulusBits}`,
    );
  }
}

/** Checks that `issuer` issued `cert`: names match, issuer is a CA, signature verifies. */
export async function checkIssuedBy(
  cert: Certificate,
  issuer: Certificate,
  role: string,
  issuerRole: string,
): Promise<void> {
  if (!bytesEqual(cert.issuerDer, issuer.subjectDer)) {
    throw new VerifyError(
      "CERT_ISSUER_MISMATCH",
      `${role} certificate: issuer "${cert.issuer}" is not the ${issuerRole} "${issuer.subject}"`,
    );
  }
  if (issuer.isCA !== true) {
    throw new VerifyError(
      "CERT_NOT_CA",
      `${issuerRole} certificate "${issuer.subject}": basicConstraints cA is not true`,
    );
  }
  checkKeyStrength(issuer, issuerRole);
  if (!(await verifySignature(issuer.publicKey, cert.signatureAlgorithm, cert.signature, cert.tbs))) {
    throw new VerifyError(
      "CERT_SIGNATURE_INVALID",
      `${role} certificate "${cert.subject}": signature does not verify under the ${issuerRole} key "${issuer.subject}"`,
    );
  }
}

export interface ChainLink {
  readonly cert: Certificate;
  /** Name used in errors: "VCEK", "ASK", "PCK leaf", ... */
  readonly role: string;
}

/**
 * Verifies leaf ← intermediates ← root at `at`, where `root` is a pinned trust anchor.
 * `chain[0]` is the leaf, the last element the root. The root must be self-signed and
 * byte-identical to one of `pinnedRoots` (comparing SHA-256 of DER).
 */
export async function verifyChain(
  chain: readonly ChainLink[],
  pinnedRoots: readonly Certificate[],
  at: Date,
  /**
   * What the first certificate is for: "signs-data" (the default: a VCEK, PCK or collateral
   * signer, whose keyUsage must then allow digitalSignature) or "issuer" (a CA verified on its
   * own, whose keyUsage must allow keyCertSign).
   */
  options: { readonly leaf?: "signs-data" | "issuer" } = {},
): Promise<void> {
  const rootLink = chain[chain.length - 1];
  if (rootLink === undefined) throw new VerifyError("CHAIN_EMPTY", "certificate chain: no certificates");
  const rootDigest = toHex(await sha256(rootLink.cert.der));
  const pinnedDigests = await Promise.all(pinnedRoots.map(async (r) => toHex(await sha256(r.der))));
  if (!pinnedDigests.includes(rootDigest)) {
    throw new VerifyError(
      "ROOT_NOT_TRUSTED",
      `${rootLink.role} certificate "${rootLink.cert.subject}" (sha256 ${rootDigest}) is not one of the ${pinnedRoots.length} pinned roots`,
    );
  }
  for (let i = 0; i < chain.length; i++) {
    const link = chain[i] as ChainLink;
    const issuer = chain[i + 1] ?? link;
    checkValidity(link.cert, at, link.role);
    checkCriticalExtensions(link.cert, link.role);
    if (i === 0 && chain.length > 1) {
      if ((options.leaf ?? "signs-data") === "signs-data") checkMaySignData(link.cert, link.role);
      else checkMaySignCertificates(link.cert, link.role);
    }
    checkMaySignCertificates(issuer.cert, issuer.role);
    if (i + 1 < chain.length) checkPathLength(chain, i + 1);
    await checkIssuedBy(link.cert, issuer.cert, link.role, issuer.role);
  }
}

/**
 * basicConstraints pathLenConstraint (RFC 5280 4.2.1.9) of `chain[at]`: the intermediate CAs
 * between it and the first certificate (chain[1..at-1], self-issued ones not counted) are at
 * most that many. Go's crypto/x509 refuses the same chain (TooManyIntermediates).
 */
function checkPathLength(chain: readonly ChainLink[], at: number): void {
  const { cert, role } = chain[at] as ChainLink;
  if (cert.pathLen === undefined) return;
  const below = chain.slice(1, at).filter((l) => !bytesEqual(l.cert.subjectDer, l.cert.issuerDer)).length;
  if (below > cert.pathLen) {
    throw new VerifyError(
      "CERT_PATH_TOO_LONG",
      `${role} certificate "${cert.subject}": pathLenConstraint expected at least ${below} (the intermediate CAs below it), found ${cert.pathLen}`,
    );
  }
}

/** Refuses a certificate carrying a critical extension this verifier does not process. */
function checkCriticalExtensions(cert: Certificate, role: string): void {
  for (const [oid, ext] of cert.extensions) {
    if (ext.critical && !PROCESSED_EXTENSIONS.has(oid)) {
      throw new VerifyError(
        "CERT_UNKNOWN_CRITICAL_EXTENSION",
        `${role} certificate "${cert.subject}": critical extension ${oid}: expected only critical extensions this verifier processes (basicConstraints, keyUsage), found one it does not`,
      );
    }
  }
}

/** The keyUsage bits after the unused-bits count (bits[0]), or null when the extension is absent. */
function keyUsageBits(cert: Certificate, role: string): Uint8Array | null {
  const value = cert.extensions.get(OID.keyUsage)?.value;
  if (value === undefined) return null;
  try {
    return derContent(readDerExact(value, TAG.BIT_STRING, "keyUsage"));
  } catch (error) {
    throw new ParseError("X509_BAD_KEY_USAGE", `${role} certificate "${cert.subject}": keyUsage is not a BIT STRING`, {
      cause: error,
    });
  }
}

/** An issuer whose keyUsage is present must have keyCertSign (RFC 5280 4.2.1.3). */
function checkMaySignCertificates(issuer: Certificate, role: string): void {
  const bits = keyUsageBits(issuer, role);
  // keyCertSign is bit 5, i.e. 0x04 of the first byte after the unused-bits count.
  if (bits !== null && ((bits[1] ?? 0) & 0x04) === 0) {
    throw new VerifyError(
      "CERT_NOT_CA",
      `${role} certificate "${issuer.subject}": keyUsage expected to include keyCertSign, found it absent`,
    );
  }
}

/** A CRL's issuer is a CA (basicConstraints cA) whose keyUsage, when present, has cRLSign (RFC 5280 4.2.1.3, 6.3.3). */
function checkMaySignCrls(issuer: Certificate): void {
  if (issuer.isCA !== true) {
    throw new VerifyError(
      "CRL_ISSUER_NOT_AUTHORIZED",
      `CRL issuer certificate "${issuer.subject}": expected basicConstraints cA true, found ${issuer.isCA === undefined ? "no basicConstraints" : "cA false"}`,
    );
  }
  const bits = keyUsageBits(issuer, "CRL issuer");
  // cRLSign is bit 6, i.e. 0x02 of the first byte after the unused-bits count.
  if (bits !== null && ((bits[1] ?? 0) & 0x02) === 0) {
    throw new VerifyError(
      "CRL_ISSUER_NOT_AUTHORIZED",
      `CRL issuer certificate "${issuer.subject}": keyUsage expected to include cRLSign, found it absent`,
    );
  }
}

/** A leaf that signs data (a report, a quote's QE report, collateral): keyUsage, when present, has digitalSignature. */
function checkMaySignData(leaf: Certificate, role: string): void {
  const bits = keyUsageBits(leaf, role);
  // digitalSignature is bit 0, i.e. 0x80 of the first byte after the unused-bits count.
  if (bits !== null && ((bits[1] ?? 0) & 0x80) === 0) {
    throw new VerifyError(
      "CERT_BAD_KEY_USAGE",
      `${role} certificate "${leaf.subject}": keyUsage expected to include digitalSignature, found it absent`,
    );
  }
}

// --- CRLs ----------------------------------------------------------------------------------------

/** One revokedCertificates entry. */
export interface CrlEntry {
  /** Serial number, lower-case hex of the unsigned magnitude. */
  readonly serial: string;
  readonly extensions: ReadonlyMap<string, Extension>;
}

export interface Crl {
  readonly der: Uint8Array;
  readonly tbs: Uint8Array;
  /** 2 when the version field is present (it must then be v2), else 1. */
  readonly version: 1 | 2;
  readonly issuer: string;
  readonly issuerDer: Uint8Array;
  readonly thisUpdate: Date;
  readonly nextUpdate: Date | undefined;
  /** Revoked serial numbers, lower-case hex of the unsigned magnitude. */
  readonly revokedSerials: ReadonlySet<string>;
  readonly entries: readonly CrlEntry[];
  /** crlExtensions by OID (RFC 5280 5.2). */
  readonly extensions: ReadonlyMap<string, Extension>;
  /** The issuingDistributionPoint extension's fields, read at parse (decodeIssuingDistributionPoint); undefined without one. */
  readonly issuingDistributionPoint: readonly IdpField[] | undefined;
  readonly signatureAlgorithm: SignatureAlgorithm;
  readonly signature: Uint8Array;
}

const CRL_OID = {
  deltaCRLIndicator: "2.5.29.27",
  issuingDistributionPoint: "2.5.29.28",
} as const;

function parseCrlUnchecked(der: Uint8Array): Crl {
  const signed = readSigned(der, "CertificateList", "tbsCertList");
  const { tbsSeq, fields } = signed;
  let i = 0;
  let version: 1 | 2 = 1;
  if (fields[0]?.tag === TAG.INTEGER) {
    const v = decodeSmallInteger(fields[0], "tbsCertList version");
    if (v !== 1) throw new ParseError("CRL_BAD_VERSION", `tbsCertList version: expected 1 (v2), found ${v}`);
    version = 2;
    i = 1;
  }
  const innerAlg = decodeSignatureAlgorithm(expectTag(fields[i++], TAG.SEQUENCE, "tbsCertList signature"));
  const issuerNode = expectTag(fields[i++], TAG.SEQUENCE, "issuer");
  const thisUpdateNode = fields[i++];
  if (thisUpdateNode === undefined)
    throw new ParseError("DER_MISSING", "tbsCertList thisUpdate: expected a time, found nothing");
  const thisUpdate = decodeTime(thisUpdateNode, "thisUpdate");
  let nextUpdate: Date | undefined;
  const maybeNext = fields[i];
  if (maybeNext !== undefined && (maybeNext.tag === TAG.UTC_TIME || maybeNext.tag === TAG.GENERALIZED_TIME)) {
    nextUpdate = decodeTime(maybeNext, "nextUpdate");
    i++;
  }
  const entries: CrlEntry[] = [];
  if (fields[i]?.tag === TAG.SEQUENCE) {
    const revoked = nonEmptyChildren(
      fields[i++] as DerNode,
      "revokedCertificates",
      "RFC 5280 5.1.2.6: leave the list out when no certificate is revoked",
    );
    for (const entry of revoked) {
      const [serial, date, entryExtensions, extra] = derChildren(expectTag(entry, TAG.SEQUENCE, "revokedCertificate"));
      if (date === undefined)
        throw new ParseError("DER_MISSING", "revokedCertificate revocationDate: expected a time, found nothing");
      decodeTime(date, "revocationDate");
      if (extra !== undefined) {
        throw new ParseError(
          "DER_TRAILING_DATA",
          `revokedCertificate: expected at most 3 fields, found more at offset ${extra.start}`,
        );
      }
      entries.push({
        serial: toHex(decodeUnsignedInteger(expectTag(serial, TAG.INTEGER, "userCertificate"), "serial")),
        extensions: entryExtensions === undefined ? new Map() : decodeExtensions(entryExtensions, "crlEntryExtensions"),
      });
    }
  }
  let extensions: ReadonlyMap<string, Extension> = new Map();
  let issuingDistributionPoint: readonly IdpField[] | undefined;
  if (fields[i]?.tag === 0xa0) {
    const [extSeq, extra] = derChildren(fields[i++] as DerNode);
    if (extra !== undefined)
      throw new ParseError(
        "DER_TRAILING_DATA",
        `crlExtensions [0]: expected one SEQUENCE, found more at offset ${extra.start}`,
      );
    extensions = decodeExtensions(extSeq, "crlExtensions");
    const idp = extensions.get(CRL_OID.issuingDistributionPoint);
    // Its structure is checked and kept here, at parse; what its scope means, in checkCrlScope.
    if (idp !== undefined) issuingDistributionPoint = decodeIssuingDistributionPoint(idp.value);
  }
  const unexpected = fields[i];
  if (unexpected !== undefined) {
    // e.g. revokedCertificates as a SET: skipping it would read a CRL that revokes as one that does not.
    throw new ParseError(
      "DER_UNEXPECTED_TAG",
      `tbsCertList: expected revokedCertificates (tag 0x30) or crlExtensions (tag 0xa0) after the update times, found tag 0x${unexpected.tag.toString(16)} at offset ${unexpected.start}`,
    );
  }
  if (version === 1 && (extensions.size > 0 || entries.some((e) => e.extensions.size > 0))) {
    throw new ParseError(
      "CRL_BAD_VERSION",
      "tbsCertList version: expected 1 (v2) in a CRL with extensions, found none (v1)",
    );
  }
  const { signatureAlgorithm, signature } = readSignature(signed, innerAlg, "CRL");
  return {
    der: der.slice(),
    tbs: derEncoding(tbsSeq).slice(),
    version,
    issuer: decodeName(issuerNode),
    issuerDer: derEncoding(issuerNode).slice(),
    thisUpdate,
    nextUpdate,
    revokedSerials: new Set(entries.map((e) => e.serial)),
    entries,
    extensions,
    issuingDistributionPoint,
    signatureAlgorithm,
    signature,
  };
}

export function parseCrl(input: Uint8Array): Crl {
  try {
    return parseCrlUnchecked(new Uint8Array(input));
  } catch (error) {
    if (error instanceof AttestationError) throw error;
    throw new ParseError("CRL_MALFORMED", "CRL: malformed DER", { cause: error });
  }
}

/**
 * RFC 5280 5.2/5.3: a CRL with a critical (CRL or entry) extension this verifier does not process
 * must not be used; a delta CRL lists changes only, so is never a complete answer; and an
 * issuingDistributionPoint limits which certificates the CRL covers. Only onlyContainsUserCerts /
 * onlyContainsCACerts are honoured (against `cert`'s basicConstraints); a CRL scoped any other way
 * (a distribution point, some reasons, indirect, attribute certificates) is refused.
 */
function checkCrlUsable(crl: Crl, cert: Certificate, role: string): void {
  const from = `CRL from "${crl.issuer}"`;
  if (crl.extensions.has(CRL_OID.deltaCRLIndicator)) {
    throw new VerifyError(
      "CRL_DELTA_UNSUPPORTED",
      `${from}: expected a complete CRL, found a delta CRL (deltaCRLIndicator ${CRL_OID.deltaCRLIndicator})`,
    );
  }
  for (const [oid, ext] of crl.extensions) {
    if (oid === CRL_OID.issuingDistributionPoint) checkCrlScope(crl, ext.value, cert, role);
    else if (ext.critical) {
      throw new VerifyError(
        "CRL_UNKNOWN_CRITICAL_EXTENSION",
        `${from}: critical CRL extension ${oid}: expected only critical extensions this verifier processes (issuingDistributionPoint), found one it does not`,
      );
    }
  }
  for (const entry of crl.entries) {
    for (const [oid, ext] of entry.extensions) {
      if (ext.critical) {
        throw new VerifyError(
          "CRL_UNKNOWN_CRITICAL_EXTENSION",
          `${from}: critical entry extension ${oid} (serial ${entry.serial}): expected no critical entry extension (this verifier processes none), found one`,
        );
      }
    }
  }
}

/** One field of an IssuingDistributionPoint: its context tag and name. */
interface IdpField {
  readonly tag: number;
  readonly name: string;
}

/** The fields of an IssuingDistributionPoint (RFC 5280 5.2.5), by tag, with the name of each. */
const IDP_FIELDS: ReadonlyMap<number, string> = new Map([
  [0xa0, "distributionPoint"],
  [0x81, "onlyContainsUserCerts"],
  [0x82, "onlyContainsCACerts"],
  [0x83, "onlySomeReasons"],
  [0x84, "indirectCRL"],
  [0x85, "onlyContainsAttributeCerts"],
]);

/**
 * The fields of an issuingDistributionPoint extension value, read strictly: a SEQUENCE of
 * [0]..[5], each at most once and in that order; its BOOLEANs (all DEFAULT FALSE) present only
 * when TRUE; and not empty (RFC 5280 5.2.5: "MUST NOT issue CRLs where the DER encoding of the
 * issuing distribution point extension is an empty sequence").
 */
function decodeIssuingDistributionPoint(value: Uint8Array): IdpField[] {
  const what = "issuingDistributionPoint";
  const fields = nonEmptyChildren(
    readDerExact(value, TAG.SEQUENCE, what),
    what,
    "RFC 5280 5.2.5: an issuingDistributionPoint must not be an empty SEQUENCE",
  );
  let previous = -1;
  const decoded = fields.map((field) => {
    const name = IDP_FIELDS.get(field.tag);
    const number = field.tag & 0x1f;
    if (name === undefined || number <= previous) {
      throw new ParseError(
        "DER_UNEXPECTED_TAG",
        `${what}: expected fields [0] distributionPoint to [5] onlyContainsAttributeCerts, each at most once and in order, found tag 0x${field.tag.toString(16)} at offset ${field.start}${previous >= 0 ? ` after [${previous}]` : ""}`,
      );
    }
    previous = number;
    if (field.tag === 0x81 || field.tag === 0x82 || field.tag === 0x84 || field.tag === 0x85) {
      derBooleanDefaultFalse(field, `${what} ${name}`);
    }
    return { tag: field.tag, name };
  });
  // RFC 5280 5.2.5: "at most one of onlyContainsUserCerts, onlyContainsCACerts, and
  // onlyContainsAttributeCerts may be set to TRUE".
  const only = decoded.filter(({ tag }) => tag === 0x81 || tag === 0x82 || tag === 0x85);
  if (only.length > 1) {
    throw new ParseError(
      "CRL_BAD_SCOPE",
      `${what}: expected at most one of onlyContainsUserCerts, onlyContainsCACerts and onlyContainsAttributeCerts (RFC 5280 5.2.5), found ${only.map(({ name }) => name).join(" and ")}`,
    );
  }
  return decoded;
}

/** issuingDistributionPoint (RFC 5280 5.2.5): honours onlyContainsUserCerts / onlyContainsCACerts, refuses the rest. */
function checkCrlScope(crl: Crl, value: Uint8Array, cert: Certificate, role: string): void {
  const from = `CRL from "${crl.issuer}"`;
  let onlyUserCerts = false;
  let onlyCaCerts = false;
  // Its BOOLEANs are present only when TRUE (decodeIssuingDistributionPoint refuses an explicit FALSE).
  // Read at parse; a Crl not made by parseCrl has its extension read here.
  for (const { tag, name } of crl.issuingDistributionPoint ?? decodeIssuingDistributionPoint(value)) {
    if (tag === 0x81) onlyUserCerts = true;
    else if (tag === 0x82) onlyCaCerts = true;
    else {
      throw new VerifyError(
        "CRL_SCOPE_UNSUPPORTED",
        `${from}: issuingDistributionPoint ${name}: expected no scope but onlyContainsUserCerts / onlyContainsCACerts, found one this verifier does not process`,
      );
    }
  }
  const isCA = cert.isCA === true;
  if ((onlyUserCerts && isCA) || (onlyCaCerts && !isCA)) {
    throw new VerifyError(
      "CRL_SCOPE_MISMATCH",
      `${from}: covers only ${onlyCaCerts ? "CA" : "end-entity"} certificates (issuingDistributionPoint), so not the ${role} certificate "${cert.subject}", which is ${isCA ? "a CA" : "not a CA"}`,
    );
  }
}

/**
 * Checks that `crl` is `issuer`'s, signed by it and usable for `cert` (checkCrlUsable). Its fields
 * are trusted: pass only a CRL the caller has itself just parsed from DER (parseCrl), never an
 * object handed in from outside (one could have its revokedSerials emptied).
 */
export async function checkCrlFor(crl: Crl, cert: Certificate, issuer: Certificate, role: string): Promise<void> {
  if (!bytesEqual(crl.issuerDer, issuer.subjectDer)) {
    throw new VerifyError("CRL_ISSUER_MISMATCH", `CRL issuer "${crl.issuer}" is not "${issuer.subject}"`);
  }
  checkMaySignCrls(issuer);
  checkKeyStrength(issuer, "CRL issuer");
  if (!(await verifySignature(issuer.publicKey, crl.signatureAlgorithm, crl.signature, crl.tbs))) {
    throw new VerifyError("CRL_SIGNATURE_INVALID", `CRL from "${crl.issuer}": signature does not verify`);
  }
  checkCrlUsable(crl, cert, role);
}

/** Throws CERT_REVOKED if `crl` (checked with checkCrlFor) lists `cert`. */
export function checkNotListed(cert: Certificate, crl: Crl, role: string): void {
  if (crl.revokedSerials.has(toHex(cert.serialNumber))) {
    throw new VerifyError(
      "CERT_REVOKED",
      `${role} certificate "${cert.subject}" (serial ${toHex(cert.serialNumber)}) is revoked`,
    );
  }
}

/**
 * Verifies a CRL's signature by `issuer`, that it may be used for `cert` (checkCrlUsable) and that
 * it is current at `at` (thisUpdate ≤ at ≤ nextUpdate), then throws CERT_REVOKED if `cert` is listed.
 * The CRL is read from `crl.der`; its other fields are not trusted.
 */
export async function checkNotRevoked(
  cert: Certificate,
  given: Crl,
  issuer: Certificate,
  at: Date,
  role: string,
): Promise<void> {
  // Read again from its DER: the other fields of an object handed in are not trusted.
  const crl = parseCrl(given.der);
  await checkCrlFor(crl, cert, issuer, role);
  checkCrlCurrent(crl, at);
  checkNotListed(cert, crl, role);
}

/** Throws CRL_NOT_YET_VALID or CRL_EXPIRED unless thisUpdate ≤ `at` ≤ nextUpdate. */
export function checkCrlCurrent(crl: Crl, at: Date): void {
  if (at < crl.thisUpdate) {
    throw new VerifyError(
      "CRL_NOT_YET_VALID",
      `CRL from "${crl.issuer}": issued ${crl.thisUpdate.toISOString()}, after the verification time ${at.toISOString()} (a clock behind, or a CRL from the future)`,
    );
  }
  if (crl.nextUpdate !== undefined && at > crl.nextUpdate) {
    throw new VerifyError(
      "CRL_EXPIRED",
      `CRL from "${crl.issuer}": valid ${crl.thisUpdate.toISOString()} to ${crl.nextUpdate?.toISOString() ?? "?"}, verification time ${at.toISOString()}`,
    );
  }
}

/** First extension value by OID, or undefined. */
export function extension(cert: Certificate, oid: string): Uint8Array | undefined {
  return cert.extensions.get(oid)?.value;
}
