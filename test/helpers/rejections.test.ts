import { describe, expect, it } from "vitest";
import { rejectionOf, thrownBy } from "./rejections.ts";

class Refused extends Error {
  readonly code = "REFUSED";
}
class Other extends Error {
  readonly code = "OTHER";
}

describe("rejectionOf", () => {
  it("returns the error of the class asked for, from a promise or a function (sync throw or rejection)", async () => {
    const refused = new Refused("no");
    expect(await rejectionOf(Promise.reject(refused), Refused)).toBe(refused);
    expect(await rejectionOf(async () => Promise.reject(refused), Refused)).toBe(refused);
    expect(
      await rejectionOf(() => {
        throw refused;
      }, Refused),
    ).toBe(refused);
    expect(await rejectionOf(Promise.reject(refused), Error)).toBe(refused);
  });

  it("fails, saying so, when the promise resolves", async () => {
    await expect(rejectionOf(Promise.resolve(1), Refused)).rejects.toThrow(
      "expected a Refused rejection, but the promise resolved",
    );
  });

  it("fails, naming the other class, code and message, when it rejects with another class; the cause is that error", async () => {
    const other = new Other("elsewhere");
    const failure = await rejectionOf(Promise.reject(other), Refused).then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(failure?.message).toBe("expected a Refused, found Error OTHER: elsewhere");
    expect(failure?.cause).toBe(other);
    await expect(rejectionOf(Promise.reject("text"), Error)).rejects.toThrow(
      "expected an Error, found a thrown string",
    );
  });
});

describe("thrownBy", () => {
  it("returns the error of the class asked for", () => {
    const refused = new Refused("no");
    expect(
      thrownBy(() => {
        throw refused;
      }, Refused),
    ).toBe(refused);
  });

  it("fails when the call returns, or throws another class", () => {
    expect(() => thrownBy(() => 1, Refused)).toThrow("expected a Refused to be thrown, but the call returned");
    expect(() =>
      thrownBy(() => {
        throw new Other("elsewhere");
      }, Refused),
    ).toThrow("expected a Refused, found Error OTHER: elsewhere");
  });
});
