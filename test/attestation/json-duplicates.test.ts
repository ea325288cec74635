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
      // Not JSON (the caller parses first), but the scan still ends: text that ends inside a string.
      '{"a":"b',
      '{"a":"\\"}',
    ]) {
      expect(findDuplicateMember(text), text).toBeNull();
    }
  });

  // The scan skips a string to the next quote behind an even number of backslashes, and takes a
  // name as it is written unless it holds a backslash: these are the spellings that could fool it.
  it("compares names as JSON.parse reads them: escaped and plain spellings of one name are one name", () => {
    expect(findDuplicateMember('{"model":"a","\\u006dodel":"b"}')).toEqual({
      name: "model",
      index: 13,
      path: ["model"],
    });
    expect(findDuplicateMember('{"\\u006dodel":"a","model":"b"}')?.name).toBe("model");
    expect(findDuplicateMember('{"\\u006Dodel":"a","\\u006dodel":"b"}')?.name).toBe("model");
    expect(findDuplicateMember('{"a/b":1,"a\\/b":2}')?.name).toBe("a/b");
    expect(findDuplicateMember('{"\\"":1,"\\u0022":2}')?.name).toBe('"');
    expect(findDuplicateMember('{"a\\\\":1,"a\\u005c":2}')?.name).toBe("a\\");
    // Different names, though their text is alike: an escaped backslash, then a quote that closes.
    for (const text of ['{"a\\\\":1,"a":2}', '{"a\\\\\\"":1,"a\\\\":2}', '{"\\u006dodel":1,"Model":2}']) {
      expect(findDuplicateMember(text), text).toBeNull();
      expect(Object.keys(JSON.parse(text) as object), text).toHaveLength(2);
    }
  });

  it("skips string values whatever they hold: quotes behind backslashes, braces, commas, names", () => {
    // Each value ends at a quote behind an even number of backslashes (none, two, four).
    const values = '"x\\\\","y\\\\\\\\","{\\"a\\":1,\\"a\\":2}","] , [ { \\\\\\" , \\"a\\":"';
    const text = `{"a":[${values}],"b":${values.split(",")[0]},"c":{"a":1}}`;
    expect(() => JSON.parse(text)).not.toThrow();
    expect(findDuplicateMember(text)).toBeNull();
    expect(findDuplicateMember(`${text.slice(0, -1)},"a":0}`)).toEqual({
      name: "a",
      index: text.length,
      path: ["a"],
    });
  });

  it("finds a second member in an object inside arrays of objects, nested objects, after long strings", () => {
    const long = 'x\\n\\"'.repeat(10_000);
    const message = (n: number) => `{"role":"user","content":"${long}${n}"}`;
    const messages = [message(0), message(1), '{"role":"user","content":"z","role":"assistant"}'];
    const text = `{"model":"m","messages":[${messages.join(",")}],"stream_options":{"include_usage":true}}`;
    expect(findDuplicateMember(text)).toEqual({
      name: "role",
      index: text.lastIndexOf('"role"'),
      path: ["messages", 2, "role"],
    });
    const deep = '{"a":{"b":[[{"c":{"d":1,"e":{"d":2}},"c2":{"d":3,"\\u0064":4}}]]}}';
    expect(findDuplicateMember(deep)).toEqual({
      name: "d",
      index: deep.lastIndexOf('"\\u0064"'),
      path: ["a", "b", 0, 0, "c2", "d"],
    });
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
