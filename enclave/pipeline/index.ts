/**
 * The enclave's per-request pipeline after decryption: policy → PII → (inference) → audit.
 * Pure modules (no I/O); the enclave server calls them in that order and sends audit lines to the
 * host's store (host/audit-store.ts). See each module's comment for what it checks and what not.
 */
export {
  AUDIT_RECORD_VERSION,
  type AuditCheckpoint,
  type AuditCheckpointCheck,
  type AuditCheckpointProblem,
  type AuditEntry,
  AuditLogVerifier,
  type AuditLogVerifierResult,
  type AuditRecord,
  type AuditUsage,
  type AuditVerifyFailure,
  type AuditVerifyOptions,
  type AuditVerifyResult,
  AuditWriter,
  type AuditWriterOptions,
  auditCommitment,
  auditGenesisHash,
  auditRecordHash,
  auditRequestIdHash,
  canonicalJson,
  checkAuditCheckpoint,
  ed25519Signer,
  parseAuditPublicKeyHex,
  verifyAuditCheckpoint,
  verifyAuditLog,
  type WrittenAuditRecord,
} from "./audit.ts";
export * from "./errors.ts";
export {
  applyPiiPolicy,
  detectPii,
  ibanValid,
  ipv6Valid,
  luhnValid,
  PII_DETECTION_ORDER,
  type PiiConfig,
  type PiiFinding,
  type PiiOutcome,
  piiAcrossMessages,
  piiPlaceholder,
  type RedactionResult,
  redactPii,
} from "./pii.ts";
export {
  type CompiledRequestPolicy,
  type CompileOptions,
  compilePattern,
  compileRequestPolicy,
  DEFAULT_MAX_PATTERN_INPUT_CHARS,
  evaluateRequestPolicy,
  type PolicyDecision,
  type PolicyRequest,
  type RequestPolicy,
} from "./policy.ts";
