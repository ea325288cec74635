/**
 * The audit log's domain tags that a record's signature and chain are made with: the enclave
 * writes and verifies with them (audit.ts), and the host checks each record it collects with them
 * (host/audit-record-check.ts), which may not load audit.ts (it reaches tweetnacl). Constants only.
 */

/** A record is signed as RECORD_TAG ‖ its canonical JSON. */
export const RECORD_TAG = "cloister/audit/record/v1\0";
/** A boot's record 0 has prevHash SHA-256(GENESIS_TAG ‖ the boot's Ed25519 public key). */
export const GENESIS_TAG = "cloister/audit/genesis/v1\0";
