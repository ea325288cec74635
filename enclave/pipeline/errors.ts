/**
 * Errors of the enclave's request pipeline (policy, PII, audit). Each has a stable `code`; messages
 * name the field, the expected and the found value, and never carry prompt text, answer text,
 * request metadata values or key material (only rule ids, entity types, counts and indexes).
 *
 * A policy or PII *block* is not an error: it is a decision returned by the evaluator. Errors here
 * are configuration problems (a manifest the enclave refuses to run with), caller bugs, and audit
 * log verification failures.
 */

export type PipelineErrorCode =
  | "POLICY_PATTERN_UNSAFE"
  | "POLICY_PATTERN_BUDGET"
  | "POLICY_REQUEST_INVALID"
  | "PII_ENTITY_UNKNOWN"
  | "AUDIT_RECORD_INVALID"
  | "AUDIT_KEY_INVALID";

export class PipelineError extends Error {
  readonly code: PipelineErrorCode;

  constructor(code: PipelineErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
  }
}

/** A manifest `pattern` rule could backtrack catastrophically; the enclave refuses the policy. */
export class PolicyPatternUnsafeError extends PipelineError {
  readonly ruleId: string;

  constructor(ruleId: string, why: string) {
    super(
      "POLICY_PATTERN_UNSAFE",
      `requestPolicy rule "${ruleId}" pattern: expected an RE2 regular expression (matched in linear time: no backreferences or lookarounds), found ${why}`,
    );
    this.ruleId = ruleId;
  }
}

/**
 * The pattern rules together could cost more RE2 work per request than the enclave allows: every
 * rule runs synchronously on the enclave's event loop for each request.
 */
export class PolicyPatternBudgetError extends PipelineError {
  constructor(total: number, limit: number, ruleCount: number) {
    super(
      "POLICY_PATTERN_BUDGET",
      `requestPolicy.rules: expected pattern rules whose worst-case RE2 work per request (program size × searches, summed) is at most ${limit} instruction-searches, found ${total} over ${ruleCount} pattern rules; remove or merge pattern rules, or shorten them`,
    );
  }
}

/** The request handed to the policy evaluator is not well-formed (caller bug). */
export class PolicyRequestInvalidError extends PipelineError {
  constructor(field: string, expected: string) {
    super("POLICY_REQUEST_INVALID", `policy request field ${field}: expected ${expected}`);
  }
}

/** A PII entity name outside manifests/schema.ts PII_ENTITIES (caller bug). */
export class PiiEntityUnknownError extends PipelineError {
  constructor(found: string) {
    super(
      "PII_ENTITY_UNKNOWN",
      `PII entity: expected one of the manifest's entity names, found ${JSON.stringify(found.slice(0, 40))}`,
    );
  }
}

/**
 * The audit writer was given a value it cannot record (caller bug). `found` is the value itself, but
 * the message names only its shape (auditValueShape): the value may be a prompt, a digest, a key id
 * or a nonce, and the message reaches the enclave's log.
 */
export class AuditRecordInvalidError extends PipelineError {
  constructor(field: string, expected: string, found: unknown) {
    super("AUDIT_RECORD_INVALID", `audit record field ${field}: expected ${expected}, found ${auditValueShape(found)}`);
  }
}

/**
 * A value's shape for an AUDIT_RECORD_INVALID message: its type and a length or size, "missing" for
 * undefined; never its content, not even a number's value (manifests/issues.ts describeValue shows
 * numbers and an object's key names, which a caller's entry could make anything).
 */
function auditValueShape(value: unknown): string {
  if (value === undefined) return "missing";
  if (value === null) return "null";
  if (typeof value === "string")
    return value === "" ? "an empty string" : `a string of ${count(value.length, "character")}`;
  if (value instanceof Uint8Array) return count(value.length, "byte");
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? "an invalid Date" : "a Date";
  if (Array.isArray(value)) return value.length === 0 ? "an empty array" : `an array of ${count(value.length, "item")}`;
  if (typeof value === "object") return `an object of ${count(Object.keys(value).length, "field")}`;
  return `a value of type ${typeof value}`;
}

function count(n: number, unit: string): string {
  return `${n} ${unit}${n === 1 ? "" : "s"}`;
}

/** An Ed25519 key of the wrong size or encoding. */
export class AuditKeyInvalidError extends PipelineError {
  constructor(field: string, expected: string, found: string) {
    super("AUDIT_KEY_INVALID", `${field}: expected ${expected}, found ${found}`);
  }
}

/**
 * Why an audit log does not verify. Reported as data by `verifyAuditLog` (not thrown), with the
 * index of the first offending line; the CLI turns it into an exit code.
 */
export type AuditVerifyCode =
  | "AUDIT_RECORD_MALFORMED"
  | "AUDIT_SIGNATURE_INVALID"
  | "AUDIT_RECORD_ALTERED"
  | "AUDIT_RECORD_REMOVED"
  | "AUDIT_RECORD_REORDERED"
  | "AUDIT_RECORD_DUPLICATED"
  | "AUDIT_CHAIN_BROKEN"
  | "AUDIT_LOG_TRUNCATED"
  | "AUDIT_CHECKPOINT_MISMATCH";

/** Thrown by the CLI (and by `assertAuditLogValid`) when a log does not verify. */
export class AuditVerifyError extends Error {
  readonly code: AuditVerifyCode;
  readonly index: number;

  constructor(code: AuditVerifyCode, index: number, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "AuditVerifyError";
    this.code = code;
    this.index = index;
  }
}
