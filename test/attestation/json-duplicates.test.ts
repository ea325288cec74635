import { describe, expect, it } from "vitest";
import { findDuplicateMember } from "../../attestation/json-duplicates.ts";

describe("findDuplicateMember", () => {
  it("finds a member named twice in one object, at any depth, after unescaping", () => {
    expect(findDuplicateMember('{"a":1,"b":2,"a":3}')).toEqual({ name: "a", index: 13, path: ["a"] });
    expect(findDuplicateMember('[{"x":{"a":[1,{"k":"v","k":"w"}]}}]')).toEqual({
      name: "k",
      index: 23,
      path: [0, "x", "a", 1, "k"],
    });
    expect(findDuplicateMember('{"keys":1,"\\u006beys":2}')?.name).toBe("keys");
    expect(findDuplicateMember('{ "a" : { } , "a" : [ ] }')?.name).toBe("a");
  });

  it("accepts equal names in different objects, and names that only occur as values", () => {
    for (const text of [
      '{"a":{"a":1},"b":{"a":2}}',
      '[{"a":1},{"a":1}]',
      '{"a":"a","b":["a","a"],"c":"\\"a\\""}',
      '{"a\\"":1,"a":2}',
      '{"":1,"x":{"":2}}',
      '"a"',
      "[]",
      "{}",
    ]) {
      expect(findDuplicateMember(text), text).toBeNull();
    }
  });

  it("agrees with JSON.parse on the captured Azure runtime data (no duplicates)", () => {
    const text =
      '{"keys":[{"kid":"HCLAkPub","key_ops":["sign"],"kty":"RSA","e":"AQAB","n":"x"}],"vm-configuration":{"console-enabled":true,"secure-boot":true,"tpm-enabled":true,"vmUniqueId":"u"},"user-data":"00"}';
    expect(findDuplicateMember(text)).toBeNull();
    expect(findDuplicateMember(text.replace('"user-data"', '"keys"'))).toEqual({
      name: "keys",
      index: text.indexOf('"user-data"'),
      path: ["keys"],
    });
  });
});
