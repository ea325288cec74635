/**
 * The sealed protocol shared by the client and the enclave (never imported by the host).
 * Platform-neutral: Uint8Array, tweetnacl and WebCrypto only, so the browser client reuses it.
 * Byte layouts, nonces, replay rule and what the host sees: docs/protocol.md.
 */
export { type ByteSource, ResponseTooLargeError, readBoundedBytes, toHex } from "./bytes.ts";
export {
  ENVELOPE_PREFIX_LENGTH,
  KEY_ID_LENGTH,
  MAX_REQUEST_CIPHERTEXT_LENGTH,
  type ParsedEnvelope,
  PROTOCOL_VERSION,
  parseEnvelope,
  REQUEST_KINDS,
  type RequestKind,
  ROUTING_HEADER_LENGTH,
  type RoutingHeader,
} from "./envelope.ts";
export * from "./errors.ts";
export {
  ClientRequestContext,
  type FinishReason,
  FRAME_ERROR_KINDS,
  FrameDecoder,
  MAX_FRAME_LENGTH,
  MAX_REDACTION_COUNT,
  type RawFrame,
  REDACTION_KINDS,
  type RedactionKind,
  type Redactions,
  ResponseSealer,
  type ResponseSummary,
  type ResponseUsage,
} from "./frames.ts";
export {
  type EnclaveSealingKey,
  enclaveKeyId,
  enclaveSealingKeyFromSecretKey,
  type SyncPrimitives,
} from "./keys.ts";
export {
  MAX_RECEIPT_LENGTH,
  type Receipt,
  type ReceiptFields,
  ReceiptInvalidError,
  signReceipt,
  textHash,
  verifyReceipt,
} from "./receipt.ts";
export { ReplayGuard, type ReplayGuardOptions } from "./replay.ts";
export {
  type OpenedRequest,
  openRequest,
  PreparedRequestKey,
  prepareRequestKey,
  type SealedRequest,
  type SealedRequestEnvelope,
  type SealRequestOptions,
  sealRequest,
} from "./request.ts";
export { openResponseFrames, REORDER_LOOKAHEAD, type ResponseEvent } from "./response.ts";
