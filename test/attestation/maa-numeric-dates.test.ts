/**
 * An MAA token's exp and nbf are NumericDates (seconds). A finite number of seconds beyond what a
 * JavaScript Date holds (±8.64e12 s) made an Invalid Date, and every comparison with its NaN time is
 * false: an nbf far in the future did not refuse the token (MAA_TOKEN_NOT_YET_VALID never thrown),
 * an exp far in the future never expired it, and the verified token's dates were Invalid Dates. Such
 * a claim is MAA_TOKEN_MALFORMED, as Infinity (1e400) already was.
 */
import { describe, expect, it } from "vitest";
import { verifyMaaToken } from "../../attestation/azure/maa.ts";
import { rejection } from "../helpers/attestation.ts";
import { testMaaSigner } from "../helpers/maa-token.ts";

const NBF = 1_700_000_000;
const AT = new Date(NBF * 1000);
/** Seconds past the last millisecond a Date holds (8.64e15 ms). */
const BEYOND = 8.64e12 + 1;

const claims = (change: Record<string, unknown>) => ({
  iss: "https://cloister-test.attest.example",
  nbf: NBF,
  exp: NBF + 3600,
  "x-ms-attestation-type": "sevsnpvm",
  ...change,
});

describe("verifyMaaToken: NumericDates a Date cannot hold", () => {
  it("takes the last second a Date holds as exp", async () => {
    const { jwks, sign } = await testMaaSigner();
    const verified = await verifyMaaToken(await sign(claims({ exp: 8.64e12 })), { jwks, at: AT, expectedIssuer: null });
    expect(verified.expiresAt.toISOString()).toBe("+275760-09-13T00:00:00.000Z");
  });

  it.each([
    ["nbf", BEYOND],
    ["nbf", -BEYOND],
    ["exp", BEYOND],
    ["exp", -BEYOND],
  ])("refuses %s %d as MAA_TOKEN_MALFORMED", async (name, value) => {
    const { jwks, sign } = await testMaaSigner();
    const error = await rejection(
      verifyMaaToken(await sign(claims({ [name]: value })), { jwks, at: AT, expectedIssuer: null }),
    );
    expect([error.code, error.message]).toEqual([
      "MAA_TOKEN_MALFORMED",
      `MAA token: claim ${name}: expected a NumericDate, found a number of seconds outside the dates JavaScript holds`,
    ]);
  });
});
