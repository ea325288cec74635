/**
 * The INSECURE attestation simulator: simulated AMD and Intel key hierarchies derived from a public
 * seed, and SNP reports / TDX quotes in the real byte formats signed by them, so the production
 * parse → verify → appraise path runs unchanged without hardware. Anyone who knows the seed can
 * forge this evidence: it is trusted only when a caller passes `insecureSimulatorAnchors()` to
 * verification AND the policy says `trustSimulator: true`; every result then says `simulated`.
 */
export {
  AMD_OID,
  INSECURE_SIMULATOR_DEFAULT_SEED,
  type InsecureSimulatedAmdHierarchy,
  type InsecureSimulatedEndorsementKey,
  insecureSimulatedAmdHierarchy,
  issueInsecureSimulatedEndorsementKey,
  type SimulatedEndorsementKeyOptions,
  writeSimulatedAmdCaCertificate,
} from "./amd.ts";
export { type InsecureSimulatorAnchors, insecureSimulatorAnchors } from "./anchors.ts";
export {
  INSECURE_SIMULATOR_MILAN_ARK_BASE64,
  INSECURE_SIMULATOR_MILAN_ASVK_BASE64,
  INSECURE_SIMULATOR_MILAN_VCEK_BASE64,
  type InsecureSimulatedSnpSigner,
  insecureSimulatedDefaultMilanCas,
  insecureSimulatedDefaultSigner,
} from "./default-milan.ts";
export {
  type InsecureSimulatedIntelHierarchy,
  type InsecureSimulatedPckLeaf,
  insecureSimulatedIntelHierarchy,
  issueInsecureSimulatedPckLeaf,
  SIMULATED_PCK_DEFAULT_TCB,
  type SimulatedPckOptions,
  type SimulatedPckTcb,
  writeSimulatedPckCaCertificate,
} from "./intel.ts";
export {
  type InsecureSimulatedTdxCollateral,
  type InsecureSimulatedTdxCollateralOptions,
  insecureSimulatedTdxCollateral,
  SIMULATED_TCB_EVALUATION_DATA_NUMBER,
} from "./intel-collateral.ts";
export { deriveInsecureEcKey, type InsecureEcKey } from "./keys.ts";
export { type MeasuredFile, SIMULATED_MEASUREMENT_DOMAIN, simulatedLaunchMeasurement } from "./measurement.ts";
export { INSECURE_SIMULATOR_ORGANIZATION } from "./names.ts";
export { generateInsecureRsaKey, type InsecureRsaKey } from "./rsa.ts";
export {
  SIMULATED_SNP_DEFAULT_POLICY,
  type SimulatedSnpReportOptions,
  signSnpReportInPlace,
  simulateSnpReport,
} from "./snp-report.ts";
export {
  SIMULATED_TD_ATTRIBUTES,
  SIMULATED_TEE_TCB_SVN,
  SIMULATED_XFAM,
  type SimulatedTdxQuoteOptions,
  simulatedMrSeam,
  simulateTdxQuote,
} from "./tdx-quote.ts";
