/** Shared assertions for attestation tests. */
import { expect } from "vitest";
import { AttestationError } from "../../attestation/errors.ts";
import { rejectionOf } from "./rejections.ts";

/** Awaits `promise`, expecting it to reject with an AttestationError, and returns that error. */
export function rejection(promise: Promise<unknown>): Promise<AttestationError> {
  return rejectionOf(promise, AttestationError);
}

/** The AttestationError code `promise` rejects with, or "ACCEPTED" when it resolves. */
export async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof AttestationError) return error.code;
    throw error;
  }
  return "ACCEPTED";
}

/** The AttestationError code `run` throws synchronously, or "RETURNED" when it returns. */
export function thrownCode(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(AttestationError);
    return (error as AttestationError).code;
  }
  return "RETURNED";
}
