/**
 * The client policy `cloister up` writes for a simulated deployment: it trusts the INSECURE
 * simulator (and says so), pins the simulated launch measurement, the operator's manifest key and
 * the model digest, and everything else the simulated enclave (enclave/tee.ts) reports as it
 * reports it, taken from the simulator's own defaults, so a simulated deployment runs every check a
 * real one does. The hardening checks are written as `cloister policy init` writes them (explicit
 * skips with their reasons, CXL_ALLOW refused, TIO_EN accepted), so the simulated policy makes the
 * checks a policy init policy makes. Production policies are written by the operator
 * (docs/platforms.md).
 */
import type { JWK } from "jose";
import { toHex } from "../attestation/bytes.ts";
import type { AttestationPolicy } from "../attestation/policy.ts";
import { snpHardeningNotPinned, tdxHardeningNotPinned } from "../attestation/policy-from-evidence.ts";
import { SIMULATED_TCB_EVALUATION_DATA_NUMBER } from "../attestation/sim/intel-collateral.ts";
import {
  SIMULATED_TD_ATTRIBUTES,
  SIMULATED_TEE_TCB_SVN,
  SIMULATED_XFAM,
  simulatedMrSeam,
} from "../attestation/sim/tdx-quote.ts";
import type { ClientPolicy } from "./policy.ts";

/** The simulated guest is launched without an ID block (enclave/tee.ts): nothing to pin there. */
const NO_ID_BLOCK = "simulated deployment: the simulated guest is launched without an ID block (ID_KEY_DIGEST zero)";
const NO_AUTHOR_KEY =
  "simulated deployment: the simulated guest is launched without an ID block, so without an author key (AUTHOR_KEY_EN clear)";

export function simulatorAttestationPolicy(tee: "sim-snp" | "sim-tdx", measurement: string): AttestationPolicy {
  const zero48 = "0".repeat(96);
  return {
    version: 1,
    trustSimulator: true,
    maximumVerificationSkewSeconds: 300,
    snp:
      tee === "sim-snp"
        ? {
            debugAllowed: false,
            migrationAgentAllowed: false,
            smtAllowed: true,
            allowedVmpls: [0],
            minimumTcb: { bootloader: 0, tee: 0, snp: 0, microcode: 0, fmc: 0 },
            measurements: [measurement],
            // The simulated host passes no host data: zero, pinned as `policy init` pins it.
            hostData: "0".repeat(64),
            idKeyDigests: { skip: { reason: NO_ID_BLOCK } },
            authorKeyDigests: { skip: { reason: NO_AUTHOR_KEY } },
            minimumGuestSvn: 0,
            allowedProducts: ["Milan"],
            signingKeys: ["vcek"],
            ...snpHardeningNotPinned(),
          }
        : null,
    tdx:
      tee === "sim-tdx"
        ? {
            debugAllowed: false,
            xfam: { allowed: [toHex(SIMULATED_XFAM)] },
            tdAttributes: { allowed: [toHex(SIMULATED_TD_ATTRIBUTES)] },
            // The simulated TDX module of the enclave's hierarchy (default seed): one fixed MRSEAM.
            mrseam: [toHex(simulatedMrSeam())],
            mrtd: [measurement],
            rtmrs: [zero48, zero48, zero48, zero48],
            mrconfigid: zero48,
            mrowner: zero48,
            mrownerconfig: zero48,
            mrservicetd: zero48,
            // The simulated enclave serves collateral signed under the simulated Intel root: its
            // TCB status, TCB evaluation, QE identity and revocation are checked like a real TD's.
            acceptedTcbStatuses: {
              statuses: ["UpToDate"],
              minimumTcbEvaluationDataNumber: SIMULATED_TCB_EVALUATION_DATA_NUMBER,
            },
            minimumTeeTcbSvn: toHex(SIMULATED_TEE_TCB_SVN),
            ...tdxHardeningNotPinned(),
          }
        : null,
    // Azure evidence comes from a real paravisor, never from the simulator.
    azure: null,
  };
}

export function simulatorClientPolicy(options: {
  tee: "sim-snp" | "sim-tdx";
  measurement: string;
  operatorKey: JWK;
  modelSha256: string;
  serviceName: string;
}): ClientPolicy {
  return {
    version: 1,
    acceptedEvidence: [options.tee === "sim-snp" ? "sev-snp" : "tdx"],
    attestation: simulatorAttestationPolicy(options.tee, options.measurement),
    manifest: {
      trustedSigners: [options.operatorKey],
      allowedModelDigests: [options.modelSha256],
      allowedServices: [options.serviceName],
    },
    freshness: { maxClockSkewSeconds: 120 },
  };
}
