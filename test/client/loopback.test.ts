/**
 * client/loopback.ts: the one rule by which the proxy, the web page and a simulator key's broker
 * tell a loopback Host (or bound address) from a name an attacker may rebind to 127.0.0.1.
 */
import { describe, expect, it } from "vitest";
import { isLoopbackAddress, isLoopbackHost } from "../../client/loopback.ts";

describe("isLoopbackHost", () => {
  it.each([
    "127.0.0.1",
    "127.0.0.1:8080",
    "127.1.2.3:80",
    "127.255.255.255",
    "localhost",
    "LocalHost:3000",
    "[::1]",
    "[::1]:443",
    " 127.0.0.1 ",
  ])("accepts %j", (host) => {
    expect(isLoopbackHost(host)).toBe(true);
  });

  it.each([
    undefined,
    "",
    "127.0.0.256",
    "127.0.0",
    "128.0.0.1",
    "0.0.0.0",
    "127.0.0.1.evil.example",
    "localhost.evil.example",
    "evil.example",
    "[localhost]",
    "[127.0.0.1]",
    "::1",
    "[::2]",
    "[::ffff:127.0.0.1]",
    "127.0.0.1:123456",
    "127.0.0.1:",
    "localhost:80:80",
  ])("refuses %j", (host) => {
    expect(isLoopbackHost(host)).toBe(false);
  });
});

describe("isLoopbackAddress (an address a server was bound to)", () => {
  it.each(["127.0.0.1", "127.9.9.9", "::1", "localhost"])("accepts %j", (address) => {
    expect(isLoopbackAddress(address)).toBe(true);
  });

  it.each(["0.0.0.0", "::", "192.0.2.1", "::ffff:127.0.0.1", "[::1]", "127.0.0.300"])("refuses %j", (address) => {
    expect(isLoopbackAddress(address)).toBe(false);
  });
});
