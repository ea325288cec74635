/**
 * The client policy `cloister up` writes for a simulated deployment: it trusts the INSECURE
 * simulator (and says so), pins the simulated launch measurement, the operator's manifest key and
 * the model digest. Production policies are written by the operator (docs/platforms.md).
 */
import type { JWK } from "jose";
import type { AttestationPolicy } from "../attestation/policy.ts";
import type { ClientPolicy } from "./policy.ts";

const SIMULATOR = "simulated deployment: the simulator has no ID block, host data, TDX module or collateral";

export function simulatorAttestationPolicy(tee: "sim-snp" | "sim-tdx", measurement: string): AttestationPolicy {
  const skip = { skip: { reason: SIMULATOR } };
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
            hostData: skip,
            idKeyDigests: skip,
            authorKeyDigests: skip,
            minimumGuestSvn: 0,
            allowedProducts: ["Milan"],
            signingKeys: ["vcek"],
          }
        : null,
    tdx:
      tee === "sim-tdx"
        ? {
            debugAllowed: false,
            xfam: skip,
            tdAttributes: skip,
            mrseam: skip,
            mrtd: [measurement],
            rtmrs: [zero48, zero48, zero48, zero48],
            mrconfigid: zero48,
            mrowner: zero48,
            mrownerconfig: zero48,
            mrservicetd: zero48,
            // The simulated enclave serves collateral signed under the simulated Intel root: its
            // TCB status, QE identity and revocation are checked like a real TD's.
            acceptedTcbStatuses: ["UpToDate"],
            minimumTeeTcbSvn: skip,
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
