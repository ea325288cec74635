import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { DEV_MANIFEST, devManifest } from "../../manifests/dev.ts";
import { ManifestSchemaError } from "../../manifests/errors.ts";
import { CHAT_WRAPPERS, parseManifest } from "../../manifests/schema.ts";
import { TINY_MODEL_SHA256, writeTinyModel } from "../../models/tiny.ts";
import { thrownBy } from "../helpers/rejections.ts";

function schemaError(value: unknown): ManifestSchemaError {
  return thrownBy(() => parseManifest(value), ManifestSchemaError);
}

const dir = mkdtempSync(join(tmpdir(), "cloister-manifest-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("dev manifest example", () => {
  it("names the tiny model by its pinned digest", () => {
    expect(DEV_MANIFEST.model.sha256).toBe(TINY_MODEL_SHA256);
  });

  it("matches the bytes the tiny model generator writes (digest and size)", async () => {
    const written = await writeTinyModel(join(dir, "tiny.gguf"));
    expect(written.sha256).toBe(DEV_MANIFEST.model.sha256);
    expect(written.bytes).toBe(DEV_MANIFEST.model.sizeBytes);
  });

  it("is the JSON file as committed, and valid", () => {
    const file = JSON.parse(readFileSync(new URL("../../manifests/examples/dev.json", import.meta.url), "utf8"));
    expect(parseManifest(file)).toEqual(DEV_MANIFEST);
  });

  it("devManifest merges overrides deeply and still checks the result", () => {
    const m = devManifest({ service: { version: "2.0.0" }, inference: { maxTokens: 16 } });
    expect(m.service).toEqual({ name: "cloister-dev", version: "2.0.0" });
    expect(m.inference).toEqual({ ...DEV_MANIFEST.inference, maxTokens: 16 });
    expect(DEV_MANIFEST.inference.maxTokens).toBe(256); // the base is not mutated
    expect(() => devManifest({ inference: { maxTokens: 0 } })).toThrow(ManifestSchemaError);
  });
});

type Case = { name: string; manifest: unknown; code: string; path: string };

const cases: Case[] = [
  {
    name: "missing top-level section",
    manifest: (({ audit: _a, ...rest }) => rest)(DEV_MANIFEST),
    code: "MANIFEST_FIELD_MISSING",
    path: "audit",
  },
  {
    name: "unknown top-level field",
    manifest: { ...DEV_MANIFEST, debug: true },
    code: "MANIFEST_FIELD_UNKNOWN",
    path: "debug",
  },
  {
    name: "upper-case digest",
    manifest: devManifestRaw({ model: { sha256: TINY_MODEL_SHA256.toUpperCase() } }),
    code: "MANIFEST_FIELD_INVALID",
    path: "model.sha256",
  },
  {
    name: "model file with a directory",
    manifest: devManifestRaw({ model: { file: "../etc/passwd" } }),
    code: "MANIFEST_FIELD_INVALID",
    path: "model.file",
  },
  {
    name: "sealed at rest without a key id",
    manifest: devManifestRaw({ model: { sealedAtRest: true, keyId: null } }),
    code: "MANIFEST_FIELD_INVALID",
    path: "model.keyId",
  },
  {
    name: "a chat wrapper node-llama-cpp does not have",
    manifest: devManifestRaw({ model: { chatWrapper: "chatml" } }),
    code: "MANIFEST_FIELD_INVALID",
    path: "model.chatWrapper",
  },
  {
    name: "debug allowed",
    manifest: devManifestRaw({ tee: { policyFlags: { debugAllowed: true } } }),
    code: "MANIFEST_FIELD_INVALID",
    path: "tee.policyFlags.debugAllowed",
  },
  {
    name: "unknown platform",
    manifest: devManifestRaw({ tee: { platforms: ["sgx"] } }),
    code: "MANIFEST_FIELD_INVALID",
    path: "tee.platforms.0",
  },
  {
    name: "any measurement on real hardware",
    manifest: devManifestRaw({ tee: { platforms: ["snp", "sim-tdx"] } }),
    code: "MANIFEST_FIELD_INVALID",
    path: "tee.allowedMeasurements",
  },
  {
    name: "empty measurement list",
    manifest: devManifestRaw({ tee: { allowedMeasurements: [] } }),
    code: "MANIFEST_FIELD_INVALID",
    path: "tee.allowedMeasurements",
  },
  {
    name: "SNP platform without an SNP TCB",
    manifest: devManifestRaw({ tee: { minimumTcb: { snp: null } } }),
    code: "MANIFEST_FIELD_INVALID",
    path: "tee.minimumTcb.snp",
  },
  {
    name: "maxTokens above contextSize",
    manifest: devManifestRaw({ inference: { contextSize: 512, maxTokens: 1024 } }),
    code: "MANIFEST_FIELD_INVALID",
    path: "inference.maxTokens",
  },
  {
    // The engine runs at most 64 (MAX_SEQUENCES): a manifest asking for more would pass its checks
    // and then fail the enclave's boot.
    name: "more context sequences than the engine runs",
    manifest: devManifestRaw({ inference: { sequences: 65 } }),
    code: "MANIFEST_FIELD_INVALID",
    path: "inference.sequences",
  },
  {
    name: "PII off without a reason",
    manifest: devManifestRaw({ requestPolicy: { pii: { mode: "off", entities: [], reason: null } } }),
    code: "MANIFEST_FIELD_INVALID",
    path: "requestPolicy.pii.reason",
  },
  {
    name: "audit off without a reason",
    manifest: devManifestRaw({ audit: { enabled: false } }),
    code: "MANIFEST_FIELD_INVALID",
    path: "audit.reason",
  },
  {
    name: "duplicate rule ids",
    manifest: devManifestRaw({
      requestPolicy: {
        rules: [
          { id: "a", kind: "maxPromptTokens", action: "block", limit: 10 },
          { id: "a", kind: "requestKind", action: "block", kinds: ["complete"] },
        ],
      },
    }),
    code: "MANIFEST_FIELD_INVALID",
    path: "requestPolicy.rules",
  },
  {
    name: "invalid regular expression",
    manifest: devManifestRaw({
      requestPolicy: { rules: [{ id: "p", kind: "pattern", action: "block", pattern: "(", caseInsensitive: false }] },
    }),
    code: "MANIFEST_FIELD_INVALID",
    path: "requestPolicy.rules.0.pattern",
  },
  {
    name: "rule missing a field",
    manifest: devManifestRaw({ requestPolicy: { rules: [{ id: "m", kind: "maxPromptTokens", action: "block" }] } }),
    code: "MANIFEST_FIELD_MISSING",
    path: "requestPolicy.rules.0.limit",
  },
  {
    name: "allowModels rule that allows",
    manifest: devManifestRaw({
      requestPolicy: { rules: [{ id: "m", kind: "allowModels", action: "allow", models: ["tiny"] }] },
    }),
    code: "MANIFEST_FIELD_INVALID",
    path: "requestPolicy.rules.0.action",
  },
  {
    name: "allowModels rule without the manifest's own model (it would block every request)",
    manifest: devManifestRaw({
      requestPolicy: { rules: [{ id: "m", kind: "allowModels", action: "block", models: ["other.gguf"] }] },
    }),
    code: "MANIFEST_FIELD_INVALID",
    path: "requestPolicy.rules.0.models",
  },
  // Each bound one step past what is accepted, and each "exactly when" rule in its other direction.
  ...(
    [
      ["a TDX platform without a TDX TCB", { tee: { minimumTcb: { tdx: null } } }, "tee.minimumTcb.tdx"],
      ["an SNP TCB without an SNP platform", { tee: { platforms: ["sim-tdx"] } }, "tee.minimumTcb.snp"],
      ["no platform", { tee: { platforms: [] } }, "tee.platforms"],
      ["a platform listed twice", { tee: { platforms: ["sim-snp", "sim-tdx", "sim-snp"] } }, "tee.platforms"],
      [
        "a measurement listed twice",
        { tee: { allowedMeasurements: ["ab".repeat(48), "ab".repeat(48)] } },
        "tee.allowedMeasurements",
      ],
      [
        "any: false",
        { tee: { allowedMeasurements: { any: false, reason: "a reason long enough" } } },
        "tee.allowedMeasurements.any",
      ],
      [
        "an SNP TCB value of 256",
        { tee: { minimumTcb: { snp: { bootloader: 256 } } } },
        "tee.minimumTcb.snp.bootloader",
      ],
      ["an fmc of 256", { tee: { minimumTcb: { snp: { fmc: 256 } } } }, "tee.minimumTcb.snp.fmc"],
      ["a pceSvn of 65536", { tee: { minimumTcb: { tdx: { pceSvn: 65536 } } } }, "tee.minimumTcb.tdx.pceSvn"],
      ["a key id with the model not sealed", { model: { sealedAtRest: false, keyId: "tiny-v1" } }, "model.keyId"],
      ["a key id of 201 characters", { model: { sealedAtRest: true, keyId: "k".repeat(201) } }, "model.keyId"],
      // The broker's and the sealed file's rule (models/key-id.ts): no key they cannot hold.
      ["a key id with a slash", { model: { sealedAtRest: true, keyId: "kbs:///models/m" } }, "model.keyId"],
      ["a key id with a space", { model: { sealedAtRest: true, keyId: "tiny v1" } }, "model.keyId"],
      ["an empty key id", { model: { sealedAtRest: true, keyId: "" } }, "model.keyId"],
      ["a sha256 of 65 hex characters", { model: { sha256: "a".repeat(65) } }, "model.sha256"],
      ["a model size of 0", { model: { sizeBytes: 0 } }, "model.sizeBytes"],
      ["a model file name of 256 characters", { model: { file: "m".repeat(256) } }, "model.file"],
      ["a model file name starting with a dot", { model: { file: ".hidden.gguf" } }, "model.file"],
      ["a service name of 64 characters", { service: { name: "s".repeat(64) } }, "service.name"],
      ["a reason of 7 characters", { audit: { enabled: false, reason: "7 chars" } }, "audit.reason"],
      ["a reason of 501 characters", { audit: { enabled: false, reason: "r".repeat(501) } }, "audit.reason"],
      ["a reason of 8 spaces and one letter", { audit: { enabled: false, reason: "        x" } }, "audit.reason"],
      ["a context of 255 tokens", { inference: { contextSize: 255, maxTokens: 16 } }, "inference.contextSize"],
      ["1025 threads", { inference: { threads: 1025 } }, "inference.threads"],
      ["maxTokens one over contextSize", { inference: { contextSize: 256, maxTokens: 257 } }, "inference.maxTokens"],
      [
        "a maxPromptTokens limit of 0",
        { requestPolicy: { rules: [{ id: "m", kind: "maxPromptTokens", action: "block", limit: 0 }] } },
        "requestPolicy.rules.0.limit",
      ],
      [
        "1001 rules",
        {
          requestPolicy: {
            rules: Array.from({ length: 1001 }, (_, i) => ({
              id: `r${i}`,
              kind: "maxPromptTokens",
              action: "allow",
              limit: 1,
            })),
          },
        },
        "requestPolicy.rules",
      ],
      [
        'pii mode "off" with entities',
        { requestPolicy: { pii: { mode: "off", entities: ["email"], reason: "a reason long enough" } } },
        "requestPolicy.pii.entities",
      ],
      [
        'pii mode "redact" with no entities',
        { requestPolicy: { pii: { mode: "redact", entities: [], reason: null } } },
        "requestPolicy.pii.entities",
      ],
      [
        'pii mode "block" with a reason',
        { requestPolicy: { pii: { mode: "block", entities: ["email"], reason: "a reason long enough" } } },
        "requestPolicy.pii.reason",
      ],
      ["a version with a leading v", { service: { version: "v1.2.3" } }, "service.version"],
      ["a version with text after it", { service: { version: "1.2.3 (beta)" } }, "service.version"],
    ] as const
  ).map(([name, overrides, path]) => ({
    name,
    manifest: devManifestRaw(overrides as Record<string, unknown>),
    code: "MANIFEST_FIELD_INVALID",
    path,
  })),
];

/** Dev manifest with overrides, without checking (so invalid values can be built). */
function devManifestRaw(overrides: Record<string, unknown>): unknown {
  const merge = (base: unknown, o: unknown): unknown => {
    if (
      typeof base !== "object" ||
      base === null ||
      Array.isArray(base) ||
      typeof o !== "object" ||
      o === null ||
      Array.isArray(o)
    ) {
      return o;
    }
    const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
    for (const [k, v] of Object.entries(o)) out[k] = merge(out[k], v);
    return out;
  };
  return merge(structuredClone(DEV_MANIFEST), overrides);
}

describe("manifest schema", () => {
  it.each(cases)("refuses $name with $code naming $path", ({ manifest, code, path }) => {
    const error = schemaError(manifest);
    expect(error.code).toBe(code);
    expect(error.issues.map((i) => i.path)).toContain(path);
    expect(error.message).toContain(path);
  });

  it("lists every violation at once", () => {
    const error = schemaError(devManifestRaw({ service: { name: "Bad Name" }, model: { sizeBytes: -1 }, extra: 1 }));
    expect(error.issues.map((i) => i.path).sort()).toEqual(["extra", "model.sizeBytes", "service.name"]);
  });

  it("keeps no zod issue (which would hold the input) in the error: an unknown field's value is not printed", () => {
    const secret = "sk-live-0123456789abcdefSECRET";
    const error = schemaError(devManifestRaw({ service: { apiKey: secret } }));
    expect(error.message).toBe("manifest field service.apiKey: expected no such field, found one");
    expect(inspect(error, { depth: 10 })).not.toContain(secret);
  });

  it("shows a refinement's offending value as found, once, not the whole object it refined", () => {
    const tdxTcb = DEV_MANIFEST.tee.minimumTcb.tdx;
    const platformsOnly = schemaError(devManifestRaw({ tee: { platforms: ["sim-snp"] } }));
    expect(platformsOnly.issues).toEqual([
      {
        path: "tee.minimumTcb.tdx",
        kind: "invalid",
        message: `manifest field tee.minimumTcb.tdx: expected null (no TDX platform is listed), found ${JSON.stringify(tdxTcb)}`,
      },
    ]);
    const noTcb = schemaError(devManifestRaw({ tee: { minimumTcb: { snp: null } } }));
    expect(noTcb.message).toBe(
      "manifest field tee.minimumTcb.snp: expected an SNP TCB (an SNP platform is listed), found null",
    );
    const audit = schemaError(devManifestRaw({ audit: { enabled: true, reason: "not needed" } }));
    expect(audit.message).toBe('manifest field audit.reason: expected null (audit is enabled), found "not needed"');
  });

  it("names the forms of allowedMeasurements when the value has neither's type", () => {
    const error = schemaError(devManifestRaw({ tee: { allowedMeasurements: 5 } }));
    expect(error.message).toBe(
      'manifest field tee.allowedMeasurements: expected a list of measurements [96 lower-case hex characters, …] or { "any": true, "reason": "…" }, found 5',
    );
  });

  it("takes a pinned chat wrapper, and a manifest without one (signed before the field) as before", () => {
    expect(DEV_MANIFEST.model).not.toHaveProperty("chatWrapper");
    expect(devManifest({ model: { chatWrapper: "jinjaTemplate" } }).model.chatWrapper).toBe("jinjaTemplate");
    expect(devManifest({ model: { chatWrapper: "llama3.1" } }).model.chatWrapper).toBe("llama3.1");
    expect(schemaError(devManifestRaw({ model: { chatWrapper: "template" } })).message).toBe(
      `manifest field model.chatWrapper: expected one of ${CHAT_WRAPPERS.map((name) => JSON.stringify(name)).join(", ")}, found "template"`,
    );
  });

  it("accepts a production-shaped manifest (real hardware, pinned measurements, sealed model)", () => {
    const m = devManifest({
      model: { sealedAtRest: true, keyId: "cloister:models:llama-3.1-8b" },
      tee: {
        platforms: ["snp", "azure-snp"],
        allowedMeasurements: ["ab".repeat(48)],
        minimumTcb: { snp: { bootloader: 10, tee: 0, snp: 23, microcode: 84, fmc: null }, tdx: null },
      },
    });
    expect(m.tee.platforms).toEqual(["snp", "azure-snp"]);
  });

  it("accepts an allowModels rule that lists the manifest's model", () => {
    const rules = [
      {
        id: "m",
        kind: "allowModels" as const,
        action: "block" as const,
        models: ["other.gguf", DEV_MANIFEST.model.file],
      },
    ];
    expect(devManifest({ requestPolicy: { rules } }).requestPolicy.rules).toHaveLength(1);
  });
});
