import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { writeGguf } from "../../models/gguf-write.ts";
import { generateModelKey, sealModelFile } from "../../models/sealed.ts";
import { TINY_MODEL_SHA256, writeTinyModel } from "../../models/tiny.ts";
import { runCloister } from "../helpers/cli.ts";
import { testDirectory } from "../helpers/test-directory.ts";

const cloister = (...args: string[]) => runCloister(args);

const dir = await testDirectory("cloister-model-cli-");

describe("cloister model make / inspect", () => {
  it("makes the tiny model, inspects it, and reports a cut file in one line", async () => {
    const path = join(dir, "tiny.gguf");
    const made = await cloister("model", "make", "tiny", "--out", path, "--json");
    expect(made.code).toBe(0);
    expect(JSON.parse(made.stdout)).toMatchObject({ path, sha256: TINY_MODEL_SHA256, matchesPinned: true });

    const inspected = await cloister("model", "inspect", path, "--json");
    expect(inspected.code).toBe(0);
    expect(JSON.parse(inspected.stdout)).toMatchObject({
      sha256: TINY_MODEL_SHA256,
      architecture: "llama",
      tensorCount: 12,
      tensorTypes: { Q8_0: 8, F32: 3, F16: 1 },
      contextLength: 2048,
    });

    const text = await cloister("model", "inspect", path);
    expect(text.stdout).toMatch(/^architecture +llama$/m);
    expect(text.stdout).toContain(TINY_MODEL_SHA256);

    const cut = join(dir, "cut.gguf");
    await writeFile(cut, (await readFile(path)).subarray(0, 5000));
    const bad = await cloister("model", "inspect", cut);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toBe("");
    expect(bad.stderr.trim().split("\n")).toHaveLength(1);
    expect(bad.stderr).toMatch(/^cloister: GGUF_(TRUNCATED|BAD_COUNT): .* at offset \d+: /);
    expect(bad.stderr).not.toMatch(/\bat .*\.ts:\d+/);
  });

  it("make's wrote line and inspect's file line quote a path with a line feed or an ESC (shellWord), as error lines do", async () => {
    const path = join(dir, "odd\nname\x1b[2J.gguf");
    const quoted = `$'${dir}/odd\\nname\\033[2J.gguf'`;
    const made = await cloister("model", "make", "tiny", "--out", path);
    expect([made.code, made.stdout.split("\n")[0]]).toEqual([0, `wrote   ${quoted}`]);
    const inspected = await cloister("model", "inspect", path);
    expect([inspected.code, inspected.stdout.split("\n")[0]]).toEqual([0, `file           ${quoted}`]);
  });

  it("inspect shows the file's own strings (name, architecture, tokenizer) escaped and cut: no terminal escape or forged line reaches stdout", async () => {
    const path = join(dir, "hostile.gguf");
    const forged = `x\u001b[2K\rsha256         ${"0".repeat(64)}\n`;
    await writeGguf(
      path,
      [
        ["general.architecture", { type: "STRING", value: "llama\u001b[31m" }],
        ["general.name", { type: "STRING", value: forged + "n".repeat(1000) }],
        // A C1 CSI, DEL, then a right-to-left override and a zero-width space (text that reads otherwise than it is).
        ["tokenizer.ggml.model", { type: "STRING", value: "gpt2\u009b2J\u007f\u202eab\u200b" }],
      ],
      [{ name: "t", type: "F32", dims: [4], data: new Float32Array(4) }],
    );
    const text = await cloister("model", "inspect", path);
    expect(text.code).toBe(0);
    // No C0 control (but the line feeds between lines), DEL, C1 or format character.
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the test looks for control characters
    expect(text.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\p{Cf}]/u);
    expect(text.stdout.match(/^sha256 /gm)).toHaveLength(1);
    expect(text.stdout).toMatch(/^architecture +llama\\u001b\[31m$/m);
    expect(text.stdout).toMatch(/^vocabulary +.*\(gpt2\\u009b2J\\u007f\\u202eab\\u200b tokenizer\)$/m);
    // Cut to 160 characters of the file's text (escapes count after the cut), then "…".
    const name = /^name +(.*)$/m.exec(text.stdout)?.[1];
    expect(name).toBe(`x\\u001b[2K\\u000dsha256         ${"0".repeat(64)}\\u000a${"n".repeat(160 - forged.length)}…`);
    // --json keeps the exact strings (JSON escapes them).
    const json = await cloister("model", "inspect", path, "--json");
    expect(JSON.parse(json.stdout)).toMatchObject({ architecture: "llama\u001b[31m" });
  });

  it("names a sealed model as one: inspect and run say it is decrypted only inside an enclave (MODEL_SEALED)", async () => {
    const plain = join(dir, "plain.gguf");
    await writeTinyModel(plain);
    const sealedPath = join(dir, "tiny.gguf.sealed");
    await sealModelFile(plain, sealedPath, generateModelKey("tiny-v1"));
    const [inspected, run] = await Promise.all([
      cloister("model", "inspect", sealedPath),
      cloister("model", "run", "--model", sealedPath, "--prompt", "x"),
    ]);
    const said =
      ': expected a GGUF file (magic "GGUF"), found a sealed model (magic "CLSEALMD"): this is a sealed Cloister ' +
      "model (cloister model seal); it is decrypted only inside an enclave that the key broker released its key to";
    expect({ code: inspected.code, stdout: inspected.stdout }).toEqual({ code: 1, stdout: "" });
    expect(inspected.stderr).toBe(`cloister: MODEL_SEALED: model file ${sealedPath}${said}\n`);
    expect({ code: run.code, stdout: run.stdout }).toEqual({ code: 1, stdout: "" });
    expect(run.stderr).toBe(`cloister: MODEL_SEALED: --model ${sealedPath}${said}\n`);
  });

  it("rejects bad magic and bad options with a clear line", async () => {
    const junk = join(dir, "junk.gguf");
    await writeFile(junk, "not a model at all, just text");
    const bad = await cloister("model", "inspect", junk);
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim()).toMatch(/^cloister: GGUF_BAD_MAGIC: magic at offset 0: expected "GGUF"/);

    const preset = await cloister("model", "make", "bench", "--preset", "huge", "--out", join(dir, "x.gguf"));
    expect(preset.code).toBe(2);
    expect(preset.stderr).toMatch(/--preset expects one of small, medium, large, found "huge"/);

    // An existing --out is not replaced without --force (checked before the model is made).
    const existing = await cloister("model", "make", "bench", "--preset", "small", "--out", junk);
    expect(existing.code).toBe(2);
    expect(existing.stderr).toContain("--out");
    expect(existing.stderr).toContain("--force");
    expect(await readFile(junk, "utf8")).toBe("not a model at all, just text");
  });
});
