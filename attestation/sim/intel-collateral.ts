/**
 * INSECURE simulated Intel PCS collateral for TDX, in the real formats (see
 * test/fixtures/attestation/tdx/collateral/): TCB info v3 (id "TDX") and TD_QE identity v2 as the
 * raw PCS response bodies (`{"tcbInfo": {...}, "signature": "hex r‖s"}`), each with its PEM issuer
 * chain (a simulated "Intel SGX TCB Signing" certificate, then the simulated root), and the DER CRLs
 * of the PCK Platform CA and of the root. Everything is signed under the simulated Intel hierarchy
 * (intel.ts), so it verifies only against `insecureSimulatorAnchors().tdx`, never against INTEL_ROOTS.
 *
 * The TCB levels are built so that the hierarchy's default PCK leaf and a quote from
 * `simulateTdxQuote` with its default TEE_TCB_SVN match the FIRST level, whose status is
 * `tcbStatus`; an older "OutOfDate" level follows, as in real collateral. The QE identity matches the
 * QE report `simulateTdxQuote` writes (Intel's TD QE MRSIGNER, ISVPRODID 2, ISVSVN 4).
 *
 * Deterministic: the TCB signing key derives from the hierarchy seed, ECDSA signatures are RFC 6979.
 */
import { toHex, utf8 } from "../bytes.ts";
import { encodeTlv } from "../der.ts";
import type { IsvSvnTcbStatus, TcbStatus } from "../tdx/collateral.ts";
import { tdxModuleIdentityId } from "../tdx/tcb.ts";
import { parseCertificate } from "../x509.ts";
import {
  type InsecureSimulatedIntelHierarchy,
  intelName,
  keyId,
  SIMULATED_INTEL_NOT_BEFORE,
  SIMULATED_PCK_NOT_AFTER,
  type SimulatedPckTcb,
  serial,
} from "./intel.ts";
import { deriveInsecureEcKey, type InsecureEcKey, signEcdsaDer, signEcdsaRaw } from "./keys.ts";
import { SIMULATED_TEE_TCB_SVN } from "./tdx-quote.ts";
import { CRL_REASON, der, toPem, writeCertificate, writeCrl, X509_OID } from "./x509-writer.ts";

/** Intel's TD quoting enclave, as simulateTdxQuote writes its QE report and Intel's TD_QE identity states it. */
const TD_QE = {
  mrSigner: "DC9E2A7C6F948F17474E34A7FC43ED030F7C1563F1BABDDF6340C82E0E54A8C5",
  isvProdId: 2,
  isvSvn: 4,
  miscSelect: "00000000",
  miscSelectMask: "FFFFFFFF",
  // The simulated QE report has ATTRIBUTES 15 00.. (INIT|MODE64BIT|PROVISIONKEY); under Intel's mask
  // (which ignores MODE64BIT, bit 2) that is Intel's 11 00.. (INIT|PROVISIONKEY).
  attributes: "11000000000000000000000000000000",
  attributesMask: "FBFFFFFFFFFFFFFF0000000000000000",
} as const;

/** Category/type labels Intel gives the first SGX / TDX TCB components (tcbinfo-tdx-*.json). */
const SGX_COMPONENT_LABELS: readonly (readonly [string, string?] | undefined)[] = [
  ["BIOS", "Early Microcode Update"],
  ["OS/VMM", "SGX Late Microcode Update"],
  ["OS/VMM", "TXT SINIT"],
  ["BIOS"],
  ["BIOS"],
  ["BIOS"],
  undefined,
  ["OS/VMM", "SEAMLDR ACM"],
];
const TDX_COMPONENT_LABELS: readonly (readonly [string, string?] | undefined)[] = [
  ["OS/VMM", "TDX Module"],
  ["OS/VMM", "TDX Module"],
  ["OS/VMM", "TDX Late Microcode Update"],
];

const CURRENT_TCB_DATE = "2024-11-13T00:00:00Z";
const OLDER_TCB_DATE = "2024-03-13T00:00:00Z";
const QE_TCB_DATE = "2024-03-13T00:00:00Z";
/** Advisory IDs of simulated levels: never real Intel-SA numbers. */
const SIMULATED_ADVISORY_OLDER = "SIMULATED-SA-00001";
const SIMULATED_ADVISORY_CURRENT = "SIMULATED-SA-00002";
const DEFAULT_VALIDITY_MS = 30 * 24 * 3600 * 1000;
/** The tcbEvaluationDataNumber of the TCB info and QE identity, unless an option says otherwise. */
export const SIMULATED_TCB_EVALUATION_DATA_NUMBER = 17;

export interface InsecureSimulatedTdxCollateralOptions {
  /** When the collateral and CRLs were issued (issueDate / thisUpdate). Whole seconds are used. */
  readonly issueDate: Date;
  /** nextUpdate of the collateral and the CRLs; default issueDate + 30 days. */
  readonly nextUpdate?: Date | undefined;
  /** Status of the TCB level the simulated platform and quote match; default "UpToDate". */
  readonly tcbStatus?: TcbStatus | undefined;
  /** Lists the hierarchy's default PCK leaf (its serial, reason keyCompromise) on the PCK CA CRL. */
  readonly revokePck?: boolean | undefined;
  /** Lists the simulated "Intel SGX TCB Signing" certificate (reason keyCompromise) on the root CA CRL. */
  readonly revokeTcbSigner?: boolean | undefined;
  /** The PCK TCB the levels are built for; default the hierarchy's default PCK leaf's. */
  readonly pckTcb?: SimulatedPckTcb | undefined;
  /** The quote's TEE_TCB_SVN the levels are built for; default SIMULATED_TEE_TCB_SVN (simulateTdxQuote's). */
  readonly teeTcbSvn?: Uint8Array | undefined;
  /**
   * Status of the tdxModuleIdentities level holding the quote's TDX module SVN (TEE_TCB_SVN[0]),
   * evaluated when TEE_TCB_SVN[1] > 0; default the module status nearest `tcbStatus` (UpToDate,
   * OutOfDate or Revoked: the only ones a module level may have). Another status makes collateral
   * the verifier refuses as malformed.
   */
  readonly tdxModuleTcbStatus?: TcbStatus | undefined;
  /**
   * The TD_QE identity's tcbLevels, newest first (the simulated QE has ISVSVN 4); default one
   * level, ISVSVN 4 UpToDate.
   */
  readonly qeTcbLevels?:
    | readonly {
        readonly isvSvn: number;
        readonly tcbStatus: TcbStatus;
        /** The level's advisoryIDs; default none. */
        readonly advisoryIds?: readonly string[] | undefined;
      }[]
    | undefined;
  /** tcbEvaluationDataNumber of both documents; default SIMULATED_TCB_EVALUATION_DATA_NUMBER (17). */
  readonly tcbEvaluationDataNumber?: number | undefined;
}

export interface InsecureSimulatedTdxCollateral {
  /** Raw PCS response body (JSON text) and `TCB-Info-Issuer-Chain` PEM (TCB signing cert, root). */
  readonly tcbInfo: { readonly json: string; readonly issuerChain: string };
  /** Raw PCS response body (JSON text) and `SGX-Enclave-Identity-Issuer-Chain` PEM (TCB signing cert, root). */
  readonly qeIdentity: { readonly json: string; readonly issuerChain: string };
  /** DER CRLs: the PCK Platform CA's (signed by the PCK CA key), then the root CA's (signed by the root key). */
  readonly crls: readonly Uint8Array[];
  /** DER of the simulated "Intel SGX TCB Signing" certificate. */
  readonly tcbSigningCertificate: Uint8Array;
}

interface TcbSigner {
  readonly key: InsecureEcKey;
  readonly certificate: Uint8Array;
  readonly issuerChain: string;
}

const signers = new Map<string, TcbSigner>();

/** The simulated "Intel SGX TCB Signing" certificate and key for the hierarchy (memoised per seed). */
function tcbSigner(hierarchy: InsecureSimulatedIntelHierarchy): TcbSigner {
  const cacheKey = `${hierarchy.seed}\u0000${toHex(hierarchy.root)}`;
  const cached = signers.get(cacheKey);
  if (cached !== undefined) return cached;
  const key = deriveInsecureEcKey(hierarchy.seed, "intel:tcb-signing", "P-256");
  const root = parseCertificate(hierarchy.root);
  const certificate = writeCertificate(
    {
      serial: serial(hierarchy.seed, "Intel SGX TCB Signing"),
      signatureAlgorithm: "ecdsa-sha256",
      issuer: root.subjectDer,
      subject: intelName("Intel SGX TCB Signing"),
      notBefore: SIMULATED_INTEL_NOT_BEFORE,
      notAfter: SIMULATED_PCK_NOT_AFTER,
      spki: key.spki,
      extensions: [
        {
          oid: X509_OID.authorityKeyIdentifier,
          critical: false,
          value: der.seq(encodeTlv(0x80, keyId(hierarchy.rootKey))),
        },
        {
          oid: X509_OID.crlDistributionPoints,
          critical: false,
          value: der.seq(
            der.seq(
              der.explicit(
                0,
                der.explicit(0, encodeTlv(0x86, utf8("https://simulator.invalid/sgx/IntelSGXRootCA.der"))),
              ),
            ),
          ),
        },
        {
          oid: X509_OID.subjectKeyIdentifier,
          critical: false,
          value: der.octets(keyId(key)),
        },
        // digitalSignature, nonRepudiation (as Intel's TCB signing certificate).
        { oid: X509_OID.keyUsage, critical: true, value: der.bits(Uint8Array.of(0xc0)) },
        { oid: X509_OID.basicConstraints, critical: true, value: der.seq() },
      ],
    },
    (tbs) => signEcdsaDer(hierarchy.rootKey, tbs),
  );
  const signer: TcbSigner = { key, certificate, issuerChain: toPem([certificate, hierarchy.root]) };
  signers.set(cacheKey, signer);
  return signer;
}

/** The TDX module level status (UpToDate, OutOfDate or Revoked) nearest a platform level status. */
function nearestModuleStatus(status: TcbStatus): IsvSvnTcbStatus {
  if (status === "OutOfDate" || status === "OutOfDateConfigurationNeeded") return "OutOfDate";
  return status === "Revoked" ? "Revoked" : "UpToDate";
}

/** Intel's timestamp format: whole seconds, "Z". */
function isoSeconds(date: Date): string {
  return new Date(Math.floor(date.getTime() / 1000) * 1000).toISOString().replace(".000Z", "Z");
}

function components(svns: readonly number[], labels: readonly (readonly [string, string?] | undefined)[]) {
  return svns.map((svn, i) => {
    const label = labels[i];
    if (label === undefined) return { svn };
    const [category, type] = label;
    return type === undefined ? { svn, category } : { svn, category, type };
  });
}

/** One step older: every non-zero SVN lowered by one (an all-zero TCB stays as it is). */
function older(svns: readonly number[]): number[] {
  return svns.map((svn) => (svn > 0 ? svn - 1 : 0));
}

function signedBody(valueKey: "tcbInfo" | "enclaveIdentity", value: unknown, key: InsecureEcKey): string {
  const text = JSON.stringify(value);
  const signature = toHex(signEcdsaRaw(key, utf8(text)));
  return `{"${valueKey}":${text},"signature":"${signature}"}`;
}

/**
 * INSECURE: TDX collateral (TCB info, QE identity, CRLs) for the simulated Intel hierarchy, in the
 * real PCS formats, so that `verifyTdxQuote` with `collateral` and `crls` fully checks a simulated
 * quote under the simulator anchors. Deterministic for given inputs.
 */
export function insecureSimulatedTdxCollateral(
  hierarchy: InsecureSimulatedIntelHierarchy,
  options: InsecureSimulatedTdxCollateralOptions,
): InsecureSimulatedTdxCollateral {
  const { issueDate } = options;
  if (!(issueDate instanceof Date) || Number.isNaN(issueDate.getTime())) {
    throw new Error("insecureSimulatedTdxCollateral: issueDate must be a valid Date");
  }
  const nextUpdate = options.nextUpdate ?? new Date(issueDate.getTime() + DEFAULT_VALIDITY_MS);
  if (!(nextUpdate instanceof Date) || Number.isNaN(nextUpdate.getTime()) || nextUpdate < issueDate) {
    throw new Error("insecureSimulatedTdxCollateral: nextUpdate must be a valid Date not before issueDate");
  }
  const tcbStatus = options.tcbStatus ?? "UpToDate";
  const pckTcb = options.pckTcb ?? hierarchy.pck.tcb;
  const teeTcbSvn = options.teeTcbSvn ?? SIMULATED_TEE_TCB_SVN;
  if (teeTcbSvn.length !== 16) throw new Error("insecureSimulatedTdxCollateral: teeTcbSvn must be 16 bytes");
  if (pckTcb.tcbComponents.length !== 16) {
    throw new Error("insecureSimulatedTdxCollateral: pckTcb.tcbComponents must have 16 SVNs");
  }
  const tcbEvaluationDataNumber = options.tcbEvaluationDataNumber ?? SIMULATED_TCB_EVALUATION_DATA_NUMBER;
  const signer = tcbSigner(hierarchy);
  const issued = isoSeconds(issueDate);
  const next = isoSeconds(nextUpdate);

  // TDX module: simulateTdxQuote leaves MRSIGNERSEAM and SEAMATTRIBUTES zero (an Intel-signed module).
  const zeroMrSigner = "0".repeat(96);
  const moduleIdentity = { mrsigner: zeroMrSigner, attributes: "0000000000000000", attributesMask: "FFFFFFFFFFFFFFFF" };
  // tdxModuleIdentities, as real TCB info lists them; evaluated only when TEE_TCB_SVN[1] (the module
  // major version) is non-zero, in which case its entry holds the quote's module SVN at `tcbStatus`.
  const moduleMajor = teeTcbSvn[1] as number;
  const moduleSvn = teeTcbSvn[0] as number;
  const moduleStatus = options.tdxModuleTcbStatus ?? nearestModuleStatus(tcbStatus);
  const identityLevels = (svn: number) => [
    { tcb: { isvsvn: svn }, tcbDate: CURRENT_TCB_DATE, tcbStatus: moduleStatus },
    ...(svn > 0
      ? [
          {
            tcb: { isvsvn: svn - 1 },
            tcbDate: OLDER_TCB_DATE,
            tcbStatus: "OutOfDate",
            advisoryIDs: [SIMULATED_ADVISORY_OLDER],
          },
        ]
      : []),
  ];
  const tdxModuleIdentities = [
    {
      id: tdxModuleIdentityId(Math.max(moduleMajor, 1)),
      ...moduleIdentity,
      tcbLevels: identityLevels(moduleSvn),
    },
  ];

  const currentAdvisories = tcbStatus === "UpToDate" ? {} : { advisoryIDs: [SIMULATED_ADVISORY_CURRENT] };
  const teeSvns = Array.from(teeTcbSvn);
  const tcbInfo = {
    id: "TDX",
    version: 3,
    issueDate: issued,
    nextUpdate: next,
    fmspc: toHex(pckTcb.fmspc),
    pceId: toHex(pckTcb.pceId),
    tcbType: 0,
    tcbEvaluationDataNumber,
    tdxModule: moduleIdentity,
    tdxModuleIdentities,
    tcbLevels: [
      {
        tcb: {
          sgxtcbcomponents: components(pckTcb.tcbComponents, SGX_COMPONENT_LABELS),
          pcesvn: pckTcb.pceSvn,
          tdxtcbcomponents: components(teeSvns, TDX_COMPONENT_LABELS),
        },
        tcbDate: CURRENT_TCB_DATE,
        tcbStatus,
        ...currentAdvisories,
      },
      {
        tcb: {
          sgxtcbcomponents: components(older(pckTcb.tcbComponents), SGX_COMPONENT_LABELS),
          pcesvn: pckTcb.pceSvn,
          tdxtcbcomponents: components(older(teeSvns), TDX_COMPONENT_LABELS),
        },
        tcbDate: OLDER_TCB_DATE,
        tcbStatus: "OutOfDate",
        advisoryIDs: [SIMULATED_ADVISORY_OLDER],
      },
    ],
  };

  const enclaveIdentity = {
    id: "TD_QE",
    version: 2,
    issueDate: issued,
    nextUpdate: next,
    tcbEvaluationDataNumber,
    miscselect: TD_QE.miscSelect,
    miscselectMask: TD_QE.miscSelectMask,
    attributes: TD_QE.attributes,
    attributesMask: TD_QE.attributesMask,
    mrsigner: TD_QE.mrSigner,
    isvprodid: TD_QE.isvProdId,
    tcbLevels: (options.qeTcbLevels ?? [{ isvSvn: TD_QE.isvSvn, tcbStatus: "UpToDate" }]).map((l) => ({
      tcb: { isvsvn: l.isvSvn },
      tcbDate: QE_TCB_DATE,
      tcbStatus: l.tcbStatus,
      ...(l.advisoryIds === undefined ? {} : { advisoryIDs: l.advisoryIds }),
    })),
  };

  // CRLs: the PCK Platform CA's (covers PCK leaves) and the root's (covers the PCK Platform CA).
  const pckCa = parseCertificate(hierarchy.pckCa);
  const root = parseCertificate(hierarchy.root);
  const pckCrl = writeCrl(
    {
      signatureAlgorithm: "ecdsa-sha256",
      issuer: pckCa.subjectDer,
      thisUpdate: issueDate,
      nextUpdate,
      revoked: options.revokePck
        ? [
            {
              serial: parseCertificate(hierarchy.pck.certificate).serialNumber,
              revocationDate: issueDate,
              reason: CRL_REASON.keyCompromise,
            },
          ]
        : [],
      authorityKeyId: keyId(hierarchy.pckCaKey),
    },
    (tbs) => signEcdsaDer(hierarchy.pckCaKey, tbs),
  );
  const rootCrl = writeCrl(
    {
      signatureAlgorithm: "ecdsa-sha256",
      issuer: root.subjectDer,
      thisUpdate: issueDate,
      nextUpdate,
      revoked: options.revokeTcbSigner
        ? [
            {
              serial: parseCertificate(signer.certificate).serialNumber,
              revocationDate: issueDate,
              reason: CRL_REASON.keyCompromise,
            },
          ]
        : [],
      authorityKeyId: keyId(hierarchy.rootKey),
    },
    (tbs) => signEcdsaDer(hierarchy.rootKey, tbs),
  );

  return {
    tcbInfo: { json: signedBody("tcbInfo", tcbInfo, signer.key), issuerChain: signer.issuerChain },
    qeIdentity: { json: signedBody("enclaveIdentity", enclaveIdentity, signer.key), issuerChain: signer.issuerChain },
    crls: [pckCrl, rootCrl],
    tcbSigningCertificate: signer.certificate,
  };
}
