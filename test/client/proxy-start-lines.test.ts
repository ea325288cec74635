/**
 * What `cloister proxy` prints once it listens (client/cli/run-proxy.ts proxyStartLines): the token's
 * file as a shell word, in its line and in the `$(cat …)` of the line to paste, so a control character
 * in the name is shown as an escape, never written to the terminal.
 */
import { describe, expect, it } from "vitest";
import { proxyStartLines } from "../../client/cli/run-proxy.ts";

const URL = "http://127.0.0.1:47123";

describe("cloister proxy's start-up lines", () => {
  it("name a plain token file as typed, and say a new one is new", () => {
    expect(proxyStartLines({ url: URL, model: "m", tokenFile: ".cloister/proxy-token", created: true })).toEqual([
      `OpenAI-compatible proxy listening on ${URL}/v1`,
      "  model        m",
      "  API key      the token in .cloister/proxy-token (new)",
      "",
      `Try:  OPENAI_BASE_URL=${URL}/v1 OPENAI_API_KEY=$(cat .cloister/proxy-token) your-openai-app`,
      "Stop with Ctrl-C.",
      "",
    ]);
  });

  it("name the token file as a shell word: a control character in its name shown as an escape, never sent", () => {
    const lines = proxyStartLines({ url: URL, model: "m", tokenFile: "a\x1b[31m token", created: false });
    expect(lines.join("\n")).not.toContain("\x1b");
    expect(lines[2]).toBe("  API key      the token in $'a\\033[31m token'");
    expect(lines[4]).toBe(`Try:  OPENAI_BASE_URL=${URL}/v1 OPENAI_API_KEY=$(cat $'a\\033[31m token') your-openai-app`);
  });
});
