/**
 * The proxy's local token (client/proxy.ts), audited by breaking it (auditor43d): the whole token is
 * compared, not a prefix or a part of it. A token of the right length that differs from the proxy's
 * in any one character is refused 401, on every /v1 route, as is the token with more or less around it.
 * (The compare's constant time, timingSafeEqual, is kept by reading the code: no test can see it.)
 */
import { afterEach, describe, expect, it } from "vitest";
import { createProxyApp } from "../../client/proxy.ts";
import { closeServers, connectTo, serve } from "./helpers.ts";

afterEach(closeServers);

const TOKEN = "cpx_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

describe("proxy: the local token is compared whole", () => {
  it("refuses a token that differs in any one character (first, middle or last), or has more or less of it", async () => {
    const { session } = await connectTo();
    const url = await serve(createProxyApp({ session, token: TOKEN }).fetch);
    const status = async (authorization: string) =>
      (await fetch(`${url}/v1/models`, { headers: { authorization } })).status;
    expect(await status(`Bearer ${TOKEN}`)).toBe(200);
    const refused: Record<string, number> = {};
    const accepted: string[] = [];
    for (let i = 0; i < TOKEN.length; i++) {
      const changed = `${TOKEN.slice(0, i)}${TOKEN[i] === "0" ? "1" : "0"}${TOKEN.slice(i + 1)}`;
      const found = await status(`Bearer ${changed}`);
      if (found === 401) refused.oneCharacter = (refused.oneCharacter ?? 0) + 1;
      else accepted.push(`character ${i}: ${found}`);
    }
    for (const [name, presented] of [
      ["a character more", `Bearer ${TOKEN}0`],
      ["a character less", `Bearer ${TOKEN.slice(0, -1)}`],
      ["a space before", `Bearer  ${TOKEN}`],
      ["another scheme", `Basic ${TOKEN}`],
      ["no scheme", TOKEN],
    ] as const) {
      const found = await status(presented);
      if (found !== 401) accepted.push(`${name}: ${found}`);
    }
    expect(accepted).toEqual([]);
    expect(refused.oneCharacter).toBe(TOKEN.length);
  });
});
