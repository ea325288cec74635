/**
 * The one way tests catch a refusal: await a rejection (`rejectionOf`) or catch a throw (`thrownBy`) of one error
 * class and return that error, for the test to check its code and message. Either fails the test, naming what
 * happened instead, when the work succeeds or fails with an error of another class (kept as the failure's cause).
 */

/** An error class, abstract or not, whose instances `instanceof` recognises. */
export type ErrorClass<E extends Error> = abstract new (...args: never[]) => E;

/** The `kind` error that `work` (a promise, or a function run and awaited) rejects or throws with. */
export async function rejectionOf<E extends Error>(
  work: Promise<unknown> | (() => unknown),
  kind: ErrorClass<E>,
): Promise<E> {
  try {
    await (typeof work === "function" ? work() : work);
  } catch (error) {
    return expected(error, kind);
  }
  throw new Error(`expected ${named(kind)} rejection, but the promise resolved`);
}

/** The `kind` error that `run` throws synchronously. */
export function thrownBy<E extends Error>(run: () => unknown, kind: ErrorClass<E>): E {
  try {
    run();
  } catch (error) {
    return expected(error, kind);
  }
  throw new Error(`expected ${named(kind)} to be thrown, but the call returned`);
}

function expected<E extends Error>(error: unknown, kind: ErrorClass<E>): E {
  if (error instanceof kind) return error;
  throw new Error(`expected ${named(kind)}, found ${described(error)}`, { cause: error });
}

/** "a Refused", "an Error": the class's name with its article. */
function named(kind: ErrorClass<Error>): string {
  return `${/^[AEIOU]/.test(kind.name) ? "an" : "a"} ${kind.name}`;
}

function described(error: unknown): string {
  if (!(error instanceof Error)) return `a thrown ${error === null ? "null" : typeof error}`;
  const code = (error as { code?: unknown }).code;
  return `${error.name}${typeof code === "string" ? ` ${code}` : ""}: ${error.message}`;
}
