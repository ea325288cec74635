/**
 * Enclave errors with stable codes. Before a request is opened they become plain HTTP errors (the
 * host sees only the code); after, they travel to the client inside a sealed error frame.
 * Messages never contain prompts, answers or keys.
 */
export class EnclaveError extends Error {
  readonly code: string;
  readonly status: 400 | 409 | 413 | 415 | 422 | 500 | 503;

  constructor(code: string, status: EnclaveError["status"], message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "EnclaveError";
    this.code = code;
    this.status = status;
  }
}
