/**
 * Attestation collateral: the public, vendor-signed data a verifier needs besides the evidence to
 * judge a platform's TCB — for Intel TDX, the TCB info and QE identity of Intel's Provisioning
 * Certification Service (PCS) with their issuer chains, and the CRLs of the PCK chain.
 *
 * It is not part of the attestation document: Intel signs it per platform family (FMSPC), not per
 * enclave, and renews it (nextUpdate is about 30 days on), while a document is signed once per
 * boot. The enclave serves it next to its document (`GET /attestation` → `{document, collateral}`),
 * the untrusted host passes it on, and verifiers check it under the same pinned root as the PCK
 * chain (attestation/tdx/verify.ts): the host can withhold it, which fails every policy that
 * requires a TCB status, or pass on older collateral that is still within its validity, as anyone
 * could; it cannot make any.
 *
 * Wire format (JSON, docs/protocol.md "Collateral"):
 *   { "tdx": { "tcbInfo": "<PCS TCB info body, exact text>", "tcbInfoIssuerChain": "<PEM>",
 *              "qeIdentity": "<PCS QE identity body, exact text>", "qeIdentityIssuerChain": "<PEM>",
 *              "crls": ["<base64url DER CRL>", …] } }
 * TCB info, QE identity and CRLs come together or not at all: a TCB status from collateral without
 * the QE identity or the revocation check would claim more than was checked.
 */
import { base64url } from "jose";
import { ParseError } from "./errors.ts";
import { decodeStrictBase64url } from "./jws.ts";
import type { TdxCollateral } from "./tdx/verify.ts";
import { describeUntrusted } from "./untrusted-text.ts";

export interface TdxCollateralWire {
  readonly tcbInfo: string;
  readonly tcbInfoIssuerChain: string;
  readonly qeIdentity: string;
  readonly qeIdentityIssuerChain: string;
  /** base64url DER CRLs: the PCK CA's (Platform or Processor) and the root CA's. */
  readonly crls: readonly string[];
}

export interface AttestationCollateral {
  readonly tdx?: TdxCollateralWire | undefined;
}

/** What verifyTdxQuote takes, decoded from the wire form. */
export interface TdxVerificationCollateral {
  readonly collateral: TdxCollateral;
  readonly crls: readonly Uint8Array[];
}

const MAX_TEXT = 512 * 1024;
/** The most CRLs TDX collateral may carry (the PCK CA's and the root CA's, with room to spare). */
export const MAX_TDX_COLLATERAL_CRLS = 4;

function malformed(message: string, cause?: unknown): ParseError {
  return new ParseError("COLLATERAL_MALFORMED", message, cause === undefined ? undefined : { cause });
}

function text(value: unknown, name: string): string {
  if (typeof value !== "string" || value.length === 0 || value.length > MAX_TEXT) {
    throw malformed(
      `collateral.${name}: expected a non-empty string of at most ${MAX_TEXT} characters, found ${typeof value === "string" ? `${value.length} characters` : typeof value}`,
    );
  }
  return value;
}

/**
 * Checks the shape of collateral as received (null or undefined: none was given). Signatures,
 * chains and dates are checked by the verifier of the evidence it belongs to.
 */
export function parseAttestationCollateral(value: unknown): AttestationCollateral | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== "object" || Array.isArray(value)) throw malformed("collateral: expected an object");
  const { tdx, ...rest } = value as Record<string, unknown>;
  const unknown = Object.keys(rest);
  if (unknown.length > 0) {
    // The names are the host's: counted, and the first shown cleaned and cut.
    const members = unknown.length === 1 ? "1 other member" : `${unknown.length} other members, the first`;
    throw malformed(`collateral: expected only "tdx", found ${members} ${describeUntrusted(unknown[0])}`);
  }
  if (tdx === undefined) return {};
  if (tdx === null || typeof tdx !== "object" || Array.isArray(tdx)) {
    throw malformed("collateral.tdx: expected an object");
  }
  const t = tdx as Record<string, unknown>;
  if (!Array.isArray(t.crls) || t.crls.length === 0 || t.crls.length > MAX_TDX_COLLATERAL_CRLS) {
    throw malformed(`collateral.tdx.crls: expected an array of 1 to ${MAX_TDX_COLLATERAL_CRLS} base64url DER CRLs`);
  }
  return {
    tdx: {
      tcbInfo: text(t.tcbInfo, "tdx.tcbInfo"),
      tcbInfoIssuerChain: text(t.tcbInfoIssuerChain, "tdx.tcbInfoIssuerChain"),
      qeIdentity: text(t.qeIdentity, "tdx.qeIdentity"),
      qeIdentityIssuerChain: text(t.qeIdentityIssuerChain, "tdx.qeIdentityIssuerChain"),
      crls: t.crls.map((crl, i) => text(crl, `tdx.crls[${i}]`)),
    },
  };
}

/** The TDX collateral of `collateral` in the form verifyTdxQuote takes. */
export function tdxVerificationCollateral(wire: TdxCollateralWire): TdxVerificationCollateral {
  return {
    collateral: {
      tcbInfo: { json: wire.tcbInfo, issuerChain: wire.tcbInfoIssuerChain },
      qeIdentity: { json: wire.qeIdentity, issuerChain: wire.qeIdentityIssuerChain },
    },
    // Base64url in its one spelling (decodeStrictBase64url), as the document's own members.
    crls: wire.crls.map((crl, i) =>
      decodeStrictBase64url(crl, `collateral.tdx.crls[${i}]`, (message, cause) => {
        throw malformed(message, cause);
      }),
    ),
  };
}

/** The wire form of TDX collateral (the enclave's side). */
export function tdxCollateralWire(input: {
  readonly tcbInfo: { readonly json: string; readonly issuerChain: string };
  readonly qeIdentity: { readonly json: string; readonly issuerChain: string };
  readonly crls: readonly Uint8Array[];
}): TdxCollateralWire {
  return {
    tcbInfo: input.tcbInfo.json,
    tcbInfoIssuerChain: input.tcbInfo.issuerChain,
    qeIdentity: input.qeIdentity.json,
    qeIdentityIssuerChain: input.qeIdentity.issuerChain,
    crls: input.crls.map((crl) => base64url.encode(crl)),
  };
}
