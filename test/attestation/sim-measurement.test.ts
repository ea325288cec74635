/** The simulated launch measurement: canonical, order-independent, sensitive to every input byte. */
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toHex, utf8 } from "../../attestation/bytes.ts";
import { sha256 } from "../../attestation/crypto.ts";
import { AttestationError } from "../../attestation/errors.ts";
import { type MeasuredFile, simulatedLaunchMeasurement } from "../../attestation/sim/measurement.ts";
import { enclaveMeasuredFiles, measureEnclave } from "../../enclave/measure.ts";

async function file(path: string, content: string): Promise<MeasuredFile> {
  return { path, sha256: await sha256(utf8(content)) };
}

describe("simulatedLaunchMeasurement", () => {
  it("is 48 bytes, independent of listing order, and changes with any input", async () => {
    const files = [await file("enclave/a.ts", "a"), await file("attestation/b.ts", "b"), await file("z.json", "z")];
    const config = utf8('{"threads":2}');
    const m = await simulatedLaunchMeasurement({ files, config });
    expect(m.length).toBe(48);
    const reversed = await simulatedLaunchMeasurement({ files: [...files].reverse(), config });
    expect(toHex(reversed)).toBe(toHex(m));
    // A one-byte edit of a file, of the config, a renamed file, a dropped file: all differ.
    const variants = [
      { files: [await file("enclave/a.ts", "A"), ...files.slice(1)], config },
      { files, config: utf8('{"threads":3}') },
      { files: [await file("enclave/c.ts", "a"), ...files.slice(1)], config },
      { files: files.slice(1), config },
    ];
    const digests = new Set([toHex(m)]);
    for (const v of variants) digests.add(toHex(await simulatedLaunchMeasurement(v)));
    expect(digests.size).toBe(variants.length + 1);
  });

  it("length-prefixes paths and config so boundaries cannot shift", async () => {
    const h = new Uint8Array(32);
    const a = await simulatedLaunchMeasurement({ files: [{ path: "ab", sha256: h }], config: utf8("c") });
    const b = await simulatedLaunchMeasurement({ files: [{ path: "a", sha256: h }], config: utf8("bc") });
    expect(toHex(a)).not.toBe(toHex(b));
  });

  it.each([
    ["absolute path", [{ path: "/etc/x.ts", sha256: new Uint8Array(32) }], "MEASUREMENT_BAD_PATH"],
    ["dot-dot path", [{ path: "enclave/../x.ts", sha256: new Uint8Array(32) }], "MEASUREMENT_BAD_PATH"],
    ["backslash path", [{ path: "enclave\\x.ts", sha256: new Uint8Array(32) }], "MEASUREMENT_BAD_PATH"],
    ["short digest", [{ path: "x.ts", sha256: new Uint8Array(31) }], "MEASUREMENT_BAD_DIGEST"],
    [
      "duplicate path",
      [
        { path: "x.ts", sha256: new Uint8Array(32) },
        { path: "x.ts", sha256: new Uint8Array(32).fill(1) },
      ],
      "MEASUREMENT_DUPLICATE_PATH",
    ],
  ] as [string, MeasuredFile[], string][])("rejects a %s", async (_name, files, code) => {
    await expect(simulatedLaunchMeasurement({ files, config: new Uint8Array() })).rejects.toSatisfy(
      (e) => e instanceof AttestationError && e.code === code,
    );
  });
});

describe("enclave/measure.ts", () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "cloister-measure-"));
    for (const dir of ["enclave/sub", "attestation", "sealed", "models", "manifests", "client/cli", "host", "bin"]) {
      await mkdir(join(root, dir), { recursive: true });
    }
    for (const dir of ["enclave/node_modules", "test"]) {
      await mkdir(join(root, dir), { recursive: true });
    }
    await writeFile(join(root, "enclave/boot.ts"), "export const boot = 1;\n");
    await writeFile(join(root, "enclave/sub/deep.ts"), "export const deep = 2;\n");
    await writeFile(join(root, "enclave/readme.md"), "not measured\n");
    await writeFile(join(root, "manifests/dev.json"), '{"model":"tiny"}\n');
    await writeFile(join(root, "enclave/node_modules/dep.ts"), "not measured\n");
    await writeFile(join(root, "attestation/verify.ts"), "export const v = 3;\n");
    await writeFile(join(root, "client/cli/main.ts"), "export const main = 4;\n");
    await writeFile(join(root, "host/app.ts"), "not measured: the host is untrusted\n");
    await writeFile(join(root, "host/cli.ts"), "export const hostOptions = 5;\n");
    await writeFile(join(root, "test/boot.test.ts"), "not measured\n");
    await writeFile(join(root, "bin/cloister.js"), "await import('../client/cli/main.ts');\n");
    await writeFile(join(root, "package.json"), '{"type":"module"}\n');
    await writeFile(join(root, "tsconfig.json"), "{}\n");
    await writeFile(join(root, "package-lock.json"), '{"lockfileVersion":3}\n');
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("measures the enclave's .ts files, its entry point, module settings and the lockfile, sorted, with relative paths", async () => {
    const files = await enclaveMeasuredFiles(root);
    expect(files.map((f) => f.path)).toEqual([
      "attestation/verify.ts",
      "bin/cloister.js",
      "client/cli/main.ts",
      "enclave/boot.ts",
      "enclave/sub/deep.ts",
      "host/cli.ts",
      "manifests/dev.json",
      "package-lock.json",
      "package.json",
      "tsconfig.json",
    ]);
    expect(toHex(files[3]?.sha256 as Uint8Array)).toBe(toHex(await sha256(utf8("export const boot = 1;\n"))));
  });

  it("refuses a tree without one of the measured single files", async () => {
    const path = join(root, "tsconfig.json");
    await rm(path);
    try {
      await expect(enclaveMeasuredFiles(root)).rejects.toMatchObject({
        code: "MEASUREMENT_FILE_UNREADABLE",
        message: expect.stringContaining("tsconfig.json"),
      });
    } finally {
      await writeFile(path, "{}\n");
    }
  });

  it("changes when one byte of enclave code or of the configuration changes", async () => {
    const config = utf8("config-v1");
    const before = await measureEnclave({ root, config });
    const again = await measureEnclave({ root, config });
    expect(toHex(again.measurement)).toBe(toHex(before.measurement));
    expect(toHex((await measureEnclave({ root, config: utf8("config-v2") })).measurement)).not.toBe(
      toHex(before.measurement),
    );
    const path = join(root, "enclave/sub/deep.ts");
    const original = await readFile(path);
    await writeFile(path, "export const deep = 3;\n");
    try {
      const after = await measureEnclave({ root, config });
      expect(toHex(after.measurement)).not.toBe(toHex(before.measurement));
    } finally {
      await writeFile(path, original);
    }
    // Unmeasured files do not change it.
    await writeFile(join(root, "host/app.ts"), "changed\n");
    expect(toHex((await measureEnclave({ root, config })).measurement)).toBe(toHex(before.measurement));
  });

  it("measures this repository's own enclave code", async () => {
    const { measurement, files } = await measureEnclave({ config: utf8("{}") });
    expect(measurement.length).toBe(48);
    const paths = files.map((f) => f.path);
    expect(paths).toContain("enclave/measure.ts");
    expect(paths).toContain("attestation/sim/measurement.ts");
    expect(paths).toContain("package-lock.json");
    expect(paths.some((p) => p.startsWith("test/") || p.startsWith("scripts/"))).toBe(false);
    expect(paths.filter((p) => p.startsWith("host/"))).toEqual(["host/cli.ts"]);
  });

  // The measurement stands for the enclave's code only if it covers every file the enclave process
  // can load. Its import graph, from the command's entry point: static imports everywhere, and the
  // lazy `import()`s of the entry point and of the enclave's own folders (its commands); the other
  // commands' lazy imports (`cloister up`, the host's implementation) never run in the enclave.
  it("covers every repository file the enclave process's import graph reaches", async () => {
    const { build } = await import("esbuild");
    const { relative, sep } = await import("node:path");
    const { REPOSITORY_ROOT } = await import("../../enclave/measure.ts");
    const top = (path: string) => relative(REPOSITORY_ROOT, path).split(sep)[0] as string;
    const enclaveOwn = ["bin", "enclave", "attestation", "sealed", "models", "manifests"];
    const result = await build({
      absWorkingDir: REPOSITORY_ROOT,
      entryPoints: ["bin/cloister.js"],
      bundle: true,
      write: false,
      metafile: true,
      platform: "node",
      format: "esm",
      packages: "external",
      logLevel: "silent",
      outdir: join(tmpdir(), "cloister-measure-graph"),
      plugins: [
        {
          name: "lazy-imports-of-other-commands",
          setup(b) {
            b.onResolve({ filter: /.*/ }, (args) =>
              args.kind === "dynamic-import" && !enclaveOwn.includes(top(args.importer))
                ? { path: args.path, external: true }
                : undefined,
            );
          },
        },
      ],
    });
    const reached = Object.keys(result.metafile?.inputs ?? {});
    // The graph reaches well beyond the measured folders' own entry (else the check proves nothing).
    expect(reached).toContain("client/cli/main.ts");
    expect(reached).toContain("enclave/run.ts");
    const measured = new Set((await enclaveMeasuredFiles()).map((f) => f.path));
    expect(reached.filter((path) => !measured.has(path))).toEqual([]);
  });
});
