/**
 * The deployment manifest: what an enclave runs (model and its digest), on which TEEs (platforms,
 * launch measurements, minimum TCB, policy flags), with which limits, what it does to a prompt
 * (request policy and PII handling) and how it audits. Signed by the operator (sign.ts); its digest
 * is bound into the TEE's report_data, so a client that verified the enclave knows this document.
 *
 * Fail closed: every object is strict (unknown fields are errors) and every field is required.
 * Turning a check off is an explicit value, with a reason where it weakens a guarantee
 * (`pii.mode: "off"` + reason, `audit.enabled: false` + reason, `allowedMeasurements: {any: true,
 * reason}` — the latter only for simulator platforms). `debugAllowed` can only be `false`.
 * The one field that may be absent is `model.chatWrapper`, added to version 1 after manifests were
 * signed without it: it turns no check on or off, and its absence means "auto", what those
 * manifests got, so they stay valid (and their digests unchanged).
 */
import { z } from "zod";
import { KEY_ID_PATTERN, KEY_ID_RULE } from "../models/key-id.ts";
import { REDACTION_KINDS } from "../sealed/frames.ts";
import { type ManifestIssue, ManifestSchemaError } from "./errors.ts";
import { expectedOneOf, explainIssue, preview } from "./issues.ts";

export const TEE_PLATFORMS = ["snp", "tdx", "azure-snp", "azure-tdx", "sim-snp", "sim-tdx"] as const;
export type TeePlatform = (typeof TEE_PLATFORMS)[number];
const SNP_PLATFORMS: readonly TeePlatform[] = ["snp", "azure-snp", "sim-snp"];
const TDX_PLATFORMS: readonly TeePlatform[] = ["tdx", "azure-tdx", "sim-tdx"];
const SIM_PLATFORMS: readonly TeePlatform[] = ["sim-snp", "sim-tdx"];

/** The PII kinds a manifest may name: the sealed final frame's (sealed/ may not import manifests/). */
export const PII_ENTITIES = REDACTION_KINDS;
export type PiiEntity = (typeof PII_ENTITIES)[number];

const hex = (bytes: number) =>
  z.string().regex(new RegExp(`^[0-9a-f]{${bytes * 2}}$`), `expected ${bytes * 2} lower-case hex characters`);
const int = (min: number, max: number) => z.number().int().min(min).max(max);
const reason = z.string().trim().min(8, "expected a reason of at least 8 characters").max(500);
const slug = z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "expected a lower-case slug (a-z, 0-9, -; at most 63)");
const action = z.enum(["block", "allow"]);

function uniqueItems<T>(items: readonly T[], key: (item: T) => unknown = (item) => item): boolean {
  return new Set(items.map(key)).size === items.length;
}

/** Launch measurements (SNP MEASUREMENT / TDX MRTD, 48 bytes each) the operator vouches for. */
const allowedMeasurements = z.union(
  [
    z.array(hex(48)).min(1, "expected at least one measurement").refine(uniqueItems, "expected no duplicates"),
    z.strictObject({ any: z.literal(true), reason }),
  ],
  {
    error: expectedOneOf([
      "a list of measurements [96 lower-case hex characters, …]",
      '{ "any": true, "reason": "…" }',
    ]),
  },
);

const snpTcb = z.strictObject({
  bootloader: int(0, 255),
  tee: int(0, 255),
  snp: int(0, 255),
  microcode: int(0, 255),
  /** Turin and later; null on Milan/Genoa, whose TCB has no FMC field. */
  fmc: int(0, 255).nullable(),
});

const tdxTcb = z.strictObject({
  /** TEE_TCB_SVN, 16 bytes. */
  teeTcbSvn: hex(16),
  pceSvn: int(0, 65535),
  qeSvn: int(0, 65535),
});

const tee = z
  .strictObject({
    platforms: z
      .array(z.enum(TEE_PLATFORMS))
      .min(1, "expected at least one platform")
      .refine(uniqueItems, "expected no duplicates"),
    allowedMeasurements,
    minimumTcb: z.strictObject({ snp: snpTcb.nullable(), tdx: tdxTcb.nullable() }),
    policyFlags: z.strictObject({
      debugAllowed: z.literal(false),
      migrationAgentAllowed: z.boolean(),
      smtAllowed: z.boolean(),
    }),
  })
  .superRefine((t, ctx) => {
    const hasSnp = t.platforms.some((p) => SNP_PLATFORMS.includes(p));
    const hasTdx = t.platforms.some((p) => TDX_PLATFORMS.includes(p));
    if (hasSnp !== (t.minimumTcb.snp !== null)) {
      ctx.addIssue({
        code: "custom",
        path: ["minimumTcb", "snp"],
        message: hasSnp
          ? "expected an SNP TCB (an SNP platform is listed)"
          : "expected null (no SNP platform is listed)",
      });
    }
    if (hasTdx !== (t.minimumTcb.tdx !== null)) {
      ctx.addIssue({
        code: "custom",
        path: ["minimumTcb", "tdx"],
        message: hasTdx ? "expected a TDX TCB (a TDX platform is listed)" : "expected null (no TDX platform is listed)",
      });
    }
    // A TD quote does not report the host's SMT: `smtAllowed: false` could not be checked on TDX, so
    // such a manifest is refused here, before it is signed (attestation/manifest-tee.ts still refuses
    // it on TDX evidence, for a manifest signed before this rule).
    if (hasTdx && !t.policyFlags.smtAllowed) {
      ctx.addIssue({
        code: "custom",
        path: ["policyFlags", "smtAllowed"],
        message: "expected true (a TDX platform is listed: a TD quote does not attest the host's SMT)",
      });
    }
    if (!Array.isArray(t.allowedMeasurements) && !t.platforms.every((p) => SIM_PLATFORMS.includes(p))) {
      ctx.addIssue({
        code: "custom",
        path: ["allowedMeasurements"],
        message: "expected a list of measurements: {any: true} is allowed only when every platform is a simulator",
      });
    }
  });

/**
 * How the enclave writes a conversation into the model's prompt: one of node-llama-cpp's chat
 * wrappers (enclave/engine/chat-wrapper.ts). "auto": node-llama-cpp chooses from the model's chat
 * template and names at boot (a manifest without the field gets it). "jinjaTemplate": the model's
 * own Jinja chat template, rendered as written (the boot is refused when the model has none, or one
 * node-llama-cpp's Jinja engine cannot render: CHAT_WRAPPER_UNAVAILABLE; or one whose trial render
 * does not end within the choice's limit: CHAT_WRAPPER_TIMEOUT, or gives no answer:
 * CHAT_WRAPPER_FAILED, as auto's resolution; it is rendered again at every chat request, on the
 * enclave's event loop, without a limit: docs/deploy.md). Any other: that
 * specialized wrapper with its default options, whatever the model's template (auto may choose the
 * same wrapper with other options for a template it matches). Pinning one makes the choice part of
 * what the operator signs, not node-llama-cpp's guess (which another version of it may make
 * otherwise), and skips auto's trial of each wrapper at boot. node-llama-cpp's names (3.22) but
 * "template", which needs a template of its own (test/engine/chat-wrapper.test.ts compares the lists).
 */
export const CHAT_WRAPPERS = [
  "auto",
  "jinjaTemplate",
  "general",
  "deepSeek",
  "qwen",
  "llama3.2-lightweight",
  "llama3.1",
  "llama3",
  "llama2Chat",
  "mistral",
  "alpacaChat",
  "functionary",
  "chatML",
  "falconChat",
  "gemma4",
  "gemma",
  "harmony",
  "muse",
  "seed",
] as const;
export type ChatWrapperChoice = (typeof CHAT_WRAPPERS)[number];

/** The manifest's `model.file`: a file name, no directories (`cloister model seal` checks its output's). */
export const MODEL_FILE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/;
/** MODEL_FILE_PATTERN in words, for error messages. */
export const MODEL_FILE_RULE = "a letter or digit, then up to 254 of A-Z a-z 0-9 . _ -";

const model = z
  .strictObject({
    /** File name only (no directories). */
    file: z.string().regex(MODEL_FILE_PATTERN, "expected a file name without directories"),
    /** SHA-256 of the model file as stored (the sealed file when sealedAtRest). */
    sha256: hex(32),
    sizeBytes: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
    /** Number of model parameters (weights). */
    parameters: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
    sealedAtRest: z.boolean(),
    /**
     * Key-broker id of the model key; null exactly when the model is not sealed at rest. The
     * broker's and the sealed file's rule (models/key-id.ts), so a manifest names only a key they
     * can hold.
     */
    keyId: z.string().regex(KEY_ID_PATTERN, `expected ${KEY_ID_RULE}`).nullable(),
    /** The prompt format (CHAT_WRAPPERS); absent: "auto". */
    chatWrapper: z.enum(CHAT_WRAPPERS).optional(),
  })
  .superRefine((m, ctx) => {
    if (m.sealedAtRest !== (m.keyId !== null)) {
      ctx.addIssue({
        code: "custom",
        path: ["keyId"],
        message: m.sealedAtRest ? "expected a key id (sealedAtRest is true)" : "expected null (sealedAtRest is false)",
      });
    }
  });

/** Most context sequences (concurrent answers) an enclave runs: the engine's limit (enclave/engine.ts). */
export const MAX_SEQUENCES = 64;

const inference = z
  .strictObject({
    contextSize: int(256, 1_048_576),
    maxTokens: int(1, 1_048_576),
    threads: int(1, 1024),
    sequences: int(1, MAX_SEQUENCES),
  })
  .superRefine((i, ctx) => {
    if (i.maxTokens > i.contextSize) {
      ctx.addIssue({ code: "custom", path: ["maxTokens"], message: `expected at most contextSize (${i.contextSize})` });
    }
  });

const ruleBase = { id: slug };
/**
 * Request rules, evaluated in order by the enclave: the first rule that matches decides (a `block`
 * ends the request, an `allow` admits it without looking further); no match → `defaultAction`.
 */
const rule = z.discriminatedUnion("kind", [
  /** Matches when the estimated prompt tokens exceed `limit`. */
  z.strictObject({ ...ruleBase, kind: z.literal("maxPromptTokens"), action, limit: int(1, 1_048_576) }),
  /**
   * Matches when the prompt text (or its normalized form) matches the regular expression. The
   * enclave runs it on RE2 (linear time), which refuses backreferences and lookarounds at boot
   * (POLICY_PATTERN_UNSAFE); the schema checks only that it parses, keeping RE2 out of clients.
   */
  z.strictObject({
    ...ruleBase,
    kind: z.literal("pattern"),
    action,
    pattern: z
      .string()
      .min(1)
      .max(500)
      .refine((p) => {
        try {
          new RegExp(p, "u");
          return true;
        } catch {
          return false;
        }
      }, "expected a valid regular expression"),
    caseInsensitive: z.boolean(),
  }),
  /**
   * Matches a request for a model not in `models`; it can only block. Requests are for the
   * manifest's own model (`model.file`), which the list must hold: the rule keeps a policy shared
   * by several manifests from being signed into a deployment of a model it does not list.
   */
  z.strictObject({
    ...ruleBase,
    kind: z.literal("allowModels"),
    action: z.literal("block"),
    models: z.array(z.string().min(1).max(200)).min(1).refine(uniqueItems, "expected no duplicates"),
  }),
  /** Matches when request metadata `key` equals `value`. */
  z.strictObject({
    ...ruleBase,
    kind: z.literal("metadataEquals"),
    action,
    key: z.string().min(1).max(100),
    value: z.string().max(500),
  }),
  /** Matches requests of the listed kinds. */
  z.strictObject({
    ...ruleBase,
    kind: z.literal("requestKind"),
    action,
    kinds: z
      .array(z.enum(["chat", "complete"]))
      .min(1)
      .refine(uniqueItems, "expected no duplicates"),
  }),
]);

const pii = z
  .strictObject({
    mode: z.enum(["redact", "block", "off"]),
    entities: z.array(z.enum(PII_ENTITIES)).refine(uniqueItems, "expected no duplicates"),
    /** Why PII filtering is off; required (non-null) exactly when mode is "off". */
    reason: reason.nullable(),
  })
  .superRefine((p, ctx) => {
    if (p.mode === "off") {
      if (p.reason === null)
        ctx.addIssue({ code: "custom", path: ["reason"], message: 'expected a reason (mode is "off")' });
      if (p.entities.length > 0)
        ctx.addIssue({ code: "custom", path: ["entities"], message: 'expected [] (mode is "off")' });
    } else {
      if (p.entities.length === 0)
        ctx.addIssue({
          code: "custom",
          path: ["entities"],
          message: `expected at least one entity (mode is "${p.mode}")`,
        });
      if (p.reason !== null)
        ctx.addIssue({ code: "custom", path: ["reason"], message: `expected null (mode is "${p.mode}")` });
    }
  });

const audit = z
  .strictObject({
    enabled: z.boolean(),
    /** Why auditing is disabled; required (non-null) exactly when enabled is false. */
    reason: reason.nullable(),
    /** Whether records hold SHA-256 of the prompt (a low-entropy prompt can be guessed from it). */
    recordPromptHash: z.boolean(),
    recordResponseHash: z.boolean(),
  })
  .superRefine((a, ctx) => {
    if (a.enabled === (a.reason !== null)) {
      ctx.addIssue({
        code: "custom",
        path: ["reason"],
        message: a.enabled ? "expected null (audit is enabled)" : "expected a reason (audit is disabled)",
      });
    }
  });

export const ManifestSchema = z
  .strictObject({
    manifestVersion: z.literal(1),
    service: z.strictObject({
      name: slug,
      version: z.string().regex(/^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.+-]+)?$/, "expected a semantic version such as 1.2.3"),
    }),
    model,
    tee,
    inference,
    requestPolicy: z.strictObject({
      defaultAction: action,
      rules: z
        .array(rule)
        .max(1000)
        .refine((rules) => uniqueItems(rules, (r) => r.id), "expected unique rule ids"),
      pii,
    }),
    audit,
  })
  .superRefine((m, ctx) => {
    // An enclave serves its manifest's model only (requests cannot name another): an allowModels
    // rule without it would block every request.
    m.requestPolicy.rules.forEach((r, i) => {
      if (r.kind === "allowModels" && !r.models.includes(m.model.file)) {
        ctx.addIssue({
          code: "custom",
          path: ["requestPolicy", "rules", i, "models"],
          message: `expected the manifest's model file ${JSON.stringify(m.model.file)} among the models: an enclave serves only that model, so this rule would block every request`,
        });
      }
    });
  });

export type Manifest = z.infer<typeof ManifestSchema>;
export type RequestRule = Manifest["requestPolicy"]["rules"][number];

/** Checks a value against the schema; throws ManifestSchemaError listing every violation. */
export function parseManifest(value: unknown): Manifest {
  const result = ManifestSchema.safeParse(value, { reportInput: true });
  if (result.success) return result.data;
  throw new ManifestSchemaError(result.error.issues.flatMap((issue) => describeIssue(issue, value)));
}

function describeIssue(issue: z.core.$ZodIssue, root: unknown): ManifestIssue[] {
  const path = issue.path.map(String).join(".");
  const field = path === "" ? "manifest" : `manifest field ${path}`;
  if (issue.code === "unrecognized_keys") {
    return issue.keys.map((key) => {
      const full = path === "" ? key : `${path}.${key}`;
      return { path: full, kind: "unknown", message: `manifest field ${full}: expected no such field, found one` };
    });
  }
  if (issue.code === "invalid_type" && issue.input === undefined) {
    return [
      {
        path,
        kind: "missing",
        message: `${field}: expected ${issue.expected}, found nothing (every field is required)`,
      },
    ];
  }
  // The value is looked up by the path (a refinement's issue holds the whole object it refined as its
  // input); a manifest is public, so it is shown itself.
  const e = explainIssue(issue, root);
  const at = e.path.map(String).join(".");
  const found = e.value === undefined ? "nothing" : preview(e.value);
  return [
    {
      path: at,
      kind: "invalid",
      message: `${at === "" ? "manifest" : `manifest field ${at}`}: ${e.expected}, found ${found}`,
    },
  ];
}
