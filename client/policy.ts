/**
 * The client policy file: which enclaves this client will send prompts to. Every field is required;
 * turning a check off is an explicit `{ "skip": { "reason": "…" } }`. It composes the attestation
 * policy (attestation/policy.ts: TEE fields, measurements, TCB, simulator trust) with what the
 * client requires of the operator's manifest (trusted signer keys, model digests, services).
 */
import { base64url } from "jose";
import { z } from "zod";
import type { AttestationCollateral } from "../attestation/collateral.ts";
import {
  identityOf,
  MAA_SECTION_REFUSAL,
  type ManifestCheck,
  type VerifiedEnclave,
  type VerifiedManifestSummary,
  verifyAttestationDocument,
} from "../attestation/document.ts";
import { unverifiedDocumentPayload } from "../attestation/document-key.ts";
import { AttestationError, ConfigurationError } from "../attestation/errors.ts";
import {
  type DocumentEvidence,
  EVIDENCE_TYPES,
  type EvidenceType,
  parseDocumentEvidence,
  type TrustAnchors,
} from "../attestation/evidence.ts";
import { parseJsonText } from "../attestation/json-text.ts";
import {
  describeManifestTeeViolations,
  type ManifestTeeViolation,
  manifestTeeViolations,
} from "../attestation/manifest-tee.ts";
import {
  type AttestationPolicy,
  AttestationPolicySchema,
  hexOf,
  isSkip,
  parseAttestationPolicy,
  parsedPerObject,
  registeredParser,
  SKIP_FORM,
  SkipSchema,
} from "../attestation/policy.ts";
import { AMD_ROOTS } from "../attestation/roots/amd.ts";
import { INTEL_ROOTS } from "../attestation/roots/intel.ts";
import {
  endsAtInsecureSimulatorIntelRoot,
  INSECURE_SIMULATOR_EVIDENCE_FOUND,
  issuedByInsecureSimulatorAsk,
} from "../attestation/sim/names.ts";
import { parseTdxQuote } from "../attestation/tdx/parse.ts";
import { parseCertificate } from "../attestation/x509.ts";
import { manifestDigest } from "../manifests/digest.ts";
import { ManifestError, ManifestKeyInvalidError } from "../manifests/errors.ts";
import { expectedOneOf, fieldPaths, formatIssue } from "../manifests/issues.ts";
import { keyUsageProblem, type ReadonlyJwk, verifyManifest } from "../manifests/sign.ts";
import { ClientError } from "./errors.ts";

/** JWK members that only a private (or symmetric) key has: RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2. */
const PRIVATE_JWK_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] as const;
/** The curve of each key type a manifest signer may have (RFC 8037 §2, RFC 7518 §6.2.1.1). */
const CURVE_OF_KTY = { OKP: "Ed25519", EC: "P-256" } as const;

/**
 * An operator's public signing key. A private member is refused by name (its value is never
 * shown): a private key pasted into a policy would be kept, and `cloister web` serves the policy to
 * its page. A kty/crv pair that does not exist, an EC key without y, or a `use`, `key_ops` or `alg`
 * that says the key never verifies a manifest, is refused here rather than at the manifest stage
 * of every connection.
 */
const jwkSchema = z
  .looseObject({
    kty: z.enum(["OKP", "EC"]),
    crv: z.enum(["Ed25519", "P-256"]),
    x: z.string().min(1),
  })
  .superRefine(
    (jwk, ctx) => {
      const member = PRIVATE_JWK_MEMBERS.find((name) => Object.hasOwn(jwk, name));
      if (member !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: [member],
          message: `expected a public key (a private key's "${member}" belongs in no policy: remove it, and keep the private key secret)`,
        });
      }
    },
    // Also when kty, crv or x is wrong (zod skips a refinement then): the pasted private key is
    // named with the rest, not only once they are fixed.
    { when: (payload) => typeof payload.value === "object" && payload.value !== null },
  )
  .superRefine((jwk, ctx) => {
    const curve = CURVE_OF_KTY[jwk.kty];
    if (jwk.crv !== curve) {
      const other = jwk.kty === "EC" ? 'an Ed25519 key has kty "OKP"' : 'a P-256 key has kty "EC"';
      ctx.addIssue({ code: "custom", path: ["crv"], message: `expected "${curve}" with kty "${jwk.kty}" (${other})` });
      return;
    }
    if (jwk.kty === "EC" && typeof jwk.y !== "string") {
      ctx.addIssue({ code: "custom", path: ["y"], message: "expected string" });
      return;
    }
    // RFC 7517 §4.2-4.4: a key marked for encryption, for other operations or for another alg can
    // never verify a manifest; refused here, naming the member, not at every connection. The value
    // found is described as every policy string is (by kind and length), not quoted.
    const usage = keyUsageProblem(jwk, "verify");
    if (usage !== null) {
      ctx.addIssue({ code: "custom", path: [usage.member], message: usage.expected });
    }
  });

/** A SHA-256 digest in either case, lower-cased, as the attestation policy's hex fields are. */
const modelDigest = hexOf(32);

export const ClientPolicySchema = z.strictObject({
  version: z.literal(1),
  /** Evidence types accepted in an attestation document. */
  acceptedEvidence: z.array(z.enum(EVIDENCE_TYPES as [EvidenceType, ...EvidenceType[]])).min(1),
  /** The attestation policy (validated by parseAttestationPolicy for precise errors). */
  attestation: z.unknown(),
  manifest: z.strictObject({
    /** Operator keys whose manifest signatures this client accepts (public JWKs). */
    trustedSigners: z.array(jwkSchema).min(1),
    /** Accepted model SHA-256 digests (64 hex, either case; lower-cased). */
    allowedModelDigests: z.union([z.array(modelDigest).min(1), SkipSchema], {
      error: expectedOneOf(["an allow-list [32 bytes as 64 hex digits, …]", SKIP_FORM]),
    }),
    /** Accepted service names. */
    allowedServices: z.union([z.array(z.string().min(1)).min(1), SkipSchema], {
      error: expectedOneOf(["an allow-list of service names", SKIP_FORM]),
    }),
  }),
  freshness: z.strictObject({
    /** Largest accepted clock difference for the enclave's nonce answer. */
    maxClockSkewSeconds: z.int().min(1).max(3600),
  }),
});

/** Every field a client policy holds, its attestation section's too: where a misplaced one belongs (formatIssue). */
const POLICY_FIELDS = [...fieldPaths(ClientPolicySchema), ...fieldPaths(AttestationPolicySchema, "attestation")];

export interface ClientPolicy {
  readonly version: 1;
  readonly acceptedEvidence: readonly EvidenceType[];
  readonly attestation: AttestationPolicy;
  readonly manifest: {
    readonly trustedSigners: readonly ReadonlyJwk[];
    readonly allowedModelDigests: readonly string[] | { readonly skip: { readonly reason: string } };
    readonly allowedServices: readonly string[] | { readonly skip: { readonly reason: string } };
  };
  readonly freshness: { readonly maxClockSkewSeconds: number };
}

/** A client policy's JSON text as a value; text that is not JSON is POLICY_INVALID (caused by a SyntaxError). */
export function clientPolicyJson(text: string): unknown {
  try {
    return parseJsonText(text);
  } catch (error) {
    // The cause is parseJsonText's SyntaxError, which (unlike V8's) does not quote the text.
    throw new ClientError("configuration", "POLICY_INVALID", `client policy: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/** A member of a value that may be no object (undefined then): the policy as given, parsed or not. */
function memberOf(value: unknown, name: string): unknown {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)[name]
    : undefined;
}

/**
 * The accepted evidence types whose attestation section is null, as problems: such a type is never
 * accepted (appraisal refuses it, TEE_NOT_ACCEPTED), so naming it reads as accepting what the policy
 * refuses. A section whose type is not accepted is fine: acceptedEvidence narrows the sections.
 * Read from the policy as given when the rest does not parse (a section null there is null parsed),
 * so this problem is listed with the others: an entry that is no evidence type is zod's to name.
 */
function unacceptableEvidence(accepted: unknown, attestation: unknown): string[] {
  if (!Array.isArray(accepted)) return [];
  const azure = memberOf(attestation, "azure");
  // Each type's section, and what stands there instead of it (null when the section is not null).
  const missing: Record<EvidenceType, [string, string | null]> = {
    "sev-snp": ["attestation.snp", memberOf(attestation, "snp") === null ? "null" : null],
    tdx: ["attestation.tdx", memberOf(attestation, "tdx") === null ? "null" : null],
    "azure-snp": [
      "attestation.azure.snp",
      azure === null ? "attestation.azure null" : memberOf(azure, "snp") === null ? "null" : null,
    ],
    "azure-tdx": [
      "attestation.azure.tdx",
      azure === null ? "attestation.azure null" : memberOf(azure, "tdx") === null ? "null" : null,
    ],
  };
  return accepted.flatMap((type: unknown, index) => {
    if (!(EVIDENCE_TYPES as readonly unknown[]).includes(type)) return [];
    const [section, found] = missing[type as EvidenceType];
    return found === null
      ? []
      : [
          `acceptedEvidence.${index}: "${type}" expected a policy section ${section}, found ${found} (write the section, or take "${type}" out of acceptedEvidence)`,
        ];
  });
}

/** Parses a client policy (JSON text or value); errors name the field path. */
export const parseClientPolicy = registeredParser(function parseClientPolicy(input: unknown): ClientPolicy {
  const value = typeof input === "string" ? clientPolicyJson(input) : input;
  const result = ClientPolicySchema.safeParse(value);
  // Every problem at once, as the attestation section lists its own: the file is fixed in one go.
  // The attestation section's own problems, its absence too, come from parseAttestationPolicy below.
  const problems = result.success
    ? []
    : result.error.issues
        .filter((issue) => issue.path[0] !== "attestation")
        .map((issue) => formatIssue(issue as z.core.$ZodIssue, value, { root: "(policy)", known: POLICY_FIELDS }));
  let attestation: AttestationPolicy | undefined;
  let attestationError: unknown;
  // A value that is no object has no attestation section to read: the problem above says so.
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    try {
      attestation = parseAttestationPolicy((value as { attestation?: unknown }).attestation, {
        within: { file: value, path: ["attestation"] },
      });
    } catch (error) {
      attestationError = error;
      problems.push((error as Error).message.replace(/^attestation policy: /, ""));
    }
  }
  // Each check below reads the policy as given when a part does not parse (the parsed value when
  // it does), so its problem is listed with the others rather than only once they are fixed.
  const givenAttestation = attestation ?? memberOf(value, "attestation");
  if ((memberOf(givenAttestation, "maa") ?? null) !== null) {
    // The SDK, the key broker and `attest` appraise the evidence of attestation documents, never an
    // MAA token (a document's maa_token is not read): a maa section would read as accepting what
    // they never accept (alone, the policy would accept nothing).
    problems.push(
      `attestation.${MAA_SECTION_REFUSAL} (the SDK, attest and the key broker appraise no MAA token: acceptedEvidence cannot name one, and a document's maa_token is not read; appraise MAA tokens with an attestation policy, verify-evidence --tee maa --policy)`,
    );
  }
  const accepted = result.success ? result.data.acceptedEvidence : memberOf(value, "acceptedEvidence");
  problems.push(...unacceptableEvidence(accepted, givenAttestation));
  if (!result.success || attestation === undefined || problems.length > 0) {
    // The cause is the attestation section's own error (which holds no input) or none: zod's
    // issues name the fields of the input, which may be misplaced secrets.
    throw new ClientError(
      "configuration",
      "POLICY_INVALID",
      `client policy: ${problems.join("; ")}`,
      attestationError === undefined ? {} : { cause: attestationError },
    );
  }
  return { ...result.data, attestation };
});

/** parseClientPolicy, once per policy object (parsedPerObject). */
export const parsedClientPolicy = parsedPerObject(parseClientPolicy);

/**
 * A client policy given to a verification entry point, parsed (once per policy object): a policy
 * that does not parse is a ConfigurationError (POLICY_INVALID, stage configuration) naming the field.
 */
function checkedClientPolicy(given: ClientPolicy): ClientPolicy {
  try {
    return parsedClientPolicy(given);
  } catch (error) {
    throw new ConfigurationError("POLICY_INVALID", (error as Error).message, { cause: error });
  }
}

const PINNED_ANCHORS: TrustAnchors = Object.freeze({ snp: AMD_ROOTS, tdx: INTEL_ROOTS });
let withSimulator: TrustAnchors | undefined;

/**
 * Trust anchors for a policy: the pinned AMD and Intel roots, plus the INSECURE simulator's roots
 * only when the policy says `trustSimulator: true`. The simulator module is loaded only then.
 * The two possible results are each one object for the process, so remembered document
 * verifications (attestation/document.ts) can recognise them.
 */
export async function anchorsForPolicy(policy: ClientPolicy): Promise<TrustAnchors> {
  return policy.attestation.trustSimulator ? anchorsWithSimulator() : PINNED_ANCHORS;
}

async function anchorsWithSimulator(): Promise<TrustAnchors> {
  if (withSimulator === undefined) {
    const { insecureSimulatorAnchors } = await import("../attestation/sim/anchors.ts");
    const sim = insecureSimulatorAnchors();
    let snp: TrustAnchors["snp"] | undefined;
    let tdx: TrustAnchors["tdx"] | undefined;
    // Built on first use: the simulated AMD hierarchy costs RSA key generation.
    withSimulator = Object.freeze({
      get snp() {
        snp ??= Object.freeze([...AMD_ROOTS, ...sim.snp]);
        return snp;
      },
      get tdx() {
        tdx ??= Object.freeze([...INTEL_ROOTS, ...sim.tdx]);
        return tdx;
      },
    });
  }
  return withSimulator;
}

/**
 * Whether evidence refused under the pinned roots is the INSECURE simulator's: for SEV-SNP, its
 * VCEK was issued by the simulator's (Milan) ASK; for TDX, the quote's PCK chain ends at the
 * simulator's Intel root and its CA was issued by that root. Both are checked against certificate
 * bytes kept in attestation/sim/names.ts, without loading the simulator (sim/anchors.ts) or
 * deriving its keys, so a build without the simulator names them too. Only names a refusal: never
 * a reason to accept.
 */
export async function isInsecureSimulatorEvidence(evidence: DocumentEvidence): Promise<boolean> {
  try {
    if (evidence.type === "sev-snp") {
      return await issuedByInsecureSimulatorAsk(parseCertificate(base64url.decode(evidence.endorsementKey)));
    }
    if (evidence.type !== "tdx") return false;
    return await endsAtInsecureSimulatorIntelRoot(parseTdxQuote(base64url.decode(evidence.quote)).pckChain);
  } catch {
    return false;
  }
}

async function isSimulatedDocument(document: string): Promise<boolean> {
  const evidence = documentEvidence(document);
  return evidence !== null && (await isInsecureSimulatorEvidence(evidence));
}

/** The evidence a document carries, unverified (null: none that parses), for naming a refusal. */
function documentEvidence(document: string): DocumentEvidence | null {
  try {
    const payload = unverifiedDocumentPayload(document) as { evidence?: unknown };
    return parseDocumentEvidence(payload.evidence);
  } catch {
    return null;
  }
}

const PLATFORM_OF: Record<EvidenceType, string> = {
  "sev-snp": "snp",
  tdx: "tdx",
  "azure-snp": "azure-snp",
  "azure-tdx": "azure-tdx",
};

/**
 * The manifest stage of document verification, driven by the client policy, which is parsed first
 * (checkedClientPolicy): one built in code with a skip without its reason is refused, not a skip.
 */
export function manifestCheckForPolicy(clientPolicy: ClientPolicy): ManifestCheck {
  return manifestCheckOf(checkedClientPolicy(clientPolicy));
}

/**
 * manifestCheckForPolicy of a policy already parsed (checkedClientPolicy): frozen (registeredParser), so
 * the verdicts always match `identity`, without a private copy.
 */
function manifestCheckOf(policy: ClientPolicy): ManifestCheck {
  let check = manifestChecks.get(policy);
  if (check === undefined) {
    check = Object.freeze(newManifestCheck(policy));
    manifestChecks.set(policy, check);
  }
  return check;
}

/** manifestCheckOf's checks, one per parsed policy: its identity (JSON) is not made again per verification. */
const manifestChecks = new WeakMap<ClientPolicy, ManifestCheck>();

function newManifestCheck(policy: ClientPolicy): ManifestCheck {
  const fail = (code: string, message: string, cause?: unknown): never => {
    throw new AttestationError("manifest", code, message, cause === undefined ? undefined : { cause });
  };
  return {
    identity: JSON.stringify(policy.manifest),
    digest: (jws) => manifestDigest(jws),
    async verify(jws, context): Promise<VerifiedManifestSummary> {
      let verified: Awaited<ReturnType<typeof verifyManifest>>;
      try {
        verified = await verifyManifest(jws, policy.manifest.trustedSigners);
      } catch (error) {
        // A ManifestError's message names its field itself ("manifest signature: …", "manifest field
        // model.sha256: …"), but a trusted key only by its index: that is this policy's trustedSigners.
        if (error instanceof ManifestKeyInvalidError) {
          return fail(error.code, `client policy manifest.trustedSigners: ${error.message}`, error);
        }
        if (error instanceof ManifestError) return fail(error.code, error.message, error);
        const code = (error as { code?: unknown }).code;
        return fail(
          typeof code === "string" ? code : "MANIFEST_INVALID",
          `manifest: ${(error as Error).message}`,
          error,
        );
      }
      const m = verified.manifest;
      const platform = context.simulated
        ? `sim-${context.tee === "tdx" ? "tdx" : "snp"}`
        : PLATFORM_OF[context.tee as EvidenceType];
      if (!(m.tee.platforms as readonly string[]).includes(platform)) {
        fail(
          "MANIFEST_PLATFORM_MISMATCH",
          `manifest tee.platforms: expected to include ${platform}, found [${m.tee.platforms.join(", ")}]`,
        );
      }
      // The tee section the operator signed, against the verified evidence: on top of the client
      // policy's appraisal (stage 2), never instead. The manifest is public (every document carries
      // it), so it narrows what the client accepts, it cannot widen it.
      const teeViolations = manifestTeeViolations(context.evidence, m.tee);
      if (teeViolations.length > 0) {
        fail((teeViolations[0] as ManifestTeeViolation).code, describeManifestTeeViolations(teeViolations));
      }
      const digests = policy.manifest.allowedModelDigests;
      if (!isSkip(digests) && !(digests as readonly string[]).includes(m.model.sha256)) {
        fail(
          "MODEL_NOT_ALLOWED",
          `manifest model.sha256: expected one of [${(digests as readonly string[]).join(", ")}], found ${m.model.sha256}`,
        );
      }
      const services = policy.manifest.allowedServices;
      if (!isSkip(services) && !(services as readonly string[]).includes(m.service.name)) {
        fail(
          "SERVICE_NOT_ALLOWED",
          `manifest service.name: expected one of [${(services as readonly string[]).join(", ")}], found ${m.service.name}`,
        );
      }
      return {
        service: { name: m.service.name, version: m.service.version },
        model: { file: m.model.file, sha256: m.model.sha256 },
        signerThumbprint: verified.signerKeyThumbprint,
        manifest: m,
      };
    },
  };
}

/**
 * Verifies an attestation document and its nonce answer against a client policy, every stage of
 * `verifyAttestationDocument` plus the policy's accepted evidence types: what the SDK's sessions
 * (at connect() and again when a verification is stale or the enclave key changed: `cloister
 * attest`, `chat`, `proxy` and the page `cloister web` serves) and the key broker (each release)
 * decide on. The host does not call it. Throws an AttestationError naming the stage
 * (`configuration`, POLICY_INVALID, for a policy built in code that does not parse).
 */
export async function verifyWithClientPolicy(
  document: string,
  given: ClientPolicy,
  nonce: { readonly value: Uint8Array; readonly answer: string },
  at: Date,
  collateral: AttestationCollateral | null = null,
): Promise<VerifiedEnclave> {
  // Parsed as connect() and the key broker parse theirs: one built in code is held to the file's
  // rules, e.g. a freshness without maxClockSkewSeconds is refused, not a nonce answer's time left
  // unchecked.
  const policy = checkedClientPolicy(given);
  let enclave: VerifiedEnclave;
  try {
    enclave = await verifyAttestationDocument(document, {
      policy: policy.attestation,
      anchors: await anchorsForPolicy(policy),
      manifest: manifestCheckOf(policy),
      at,
      nonce,
      maxClockSkewSeconds: policy.freshness.maxClockSkewSeconds,
      collateral,
    });
  } catch (error) {
    // Without the simulator's roots, simulated evidence fails as an unknown root. Name the real
    // cause: the fix is the policy's trustSimulator (for development), not a broken deployment.
    if (
      error instanceof AttestationError &&
      error.code === "ROOT_NOT_TRUSTED" &&
      !policy.attestation.trustSimulator &&
      (await isSimulatedDocument(document))
    ) {
      throw new AttestationError(
        "appraise",
        "SIMULATED_EVIDENCE_NOT_TRUSTED",
        `${INSECURE_SIMULATOR_EVIDENCE_FOUND}, which this policy does not trust (attestation.trustSimulator: false); this enclave runs on the simulator: use a policy that trusts it for local development (\`cloister up\` writes one: .cloister/policy.json) or a deployment on SEV-SNP or TDX hardware`,
        { cause: error },
      );
    }
    throw error;
  }
  if (!policy.acceptedEvidence.includes(enclave.tee)) {
    const error = new AttestationError(
      "appraise",
      "TEE_NOT_ACCEPTED",
      `evidence type expected one of [${policy.acceptedEvidence.join(", ")}], found ${enclave.tee}`,
    );
    error.evidence = identityOf(enclave);
    throw error;
  }
  return enclave;
}

/**
 * What a policy lets through beyond known images, for a reviewer: the simulator, skipped
 * measurements, debuggable or migratable guests. `passes` ends the sentences about what an unknown
 * guest then gets ("gets the key" for a key broker's release policy, "is sent your prompts" for a
 * client). The signed manifest is public (every document carries it), so without pinned
 * measurements any guest on genuine hardware that presents it passes. The policy is parsed first
 * (checkedClientPolicy), as the verifier parses it: one built in code that does not parse is
 * refused (POLICY_INVALID), never read as fewer risks (a debugAllowed of "true" is no `=== true`).
 */
export function policyRisks(given: ClientPolicy, passes: string): string[] {
  const risks: string[] = [];
  const a = checkedClientPolicy(given).attestation;
  if (a.trustSimulator) risks.push("trusts the INSECURE simulator: anyone can forge its evidence");
  if (a.snp !== null && isSkip(a.snp.measurements)) {
    risks.push(`snp.measurements skipped: any SEV-SNP guest that presents the manifest ${passes}`);
  }
  if (a.snp?.debugAllowed === true) risks.push("snp.debugAllowed: a debuggable guest's memory is open to the host");
  if (a.snp?.migrationAgentAllowed === true) {
    risks.push("snp.migrationAgentAllowed: a migration agent (chosen by the host at launch) can export the guest");
  }
  if (a.tdx !== null && isSkip(a.tdx.mrtd)) {
    risks.push(`tdx.mrtd skipped: any TDX guest that presents the manifest ${passes}`);
  }
  if (a.tdx?.debugAllowed === true) risks.push("tdx.debugAllowed: a debuggable TD's memory is open to the host");
  if (a.tdx !== null && isSkip(a.tdx.tdAttributes)) {
    risks.push(`tdx.tdAttributes skipped: a TD the host launched migratable or with #VE on EPT violations ${passes}`);
  }
  if (a.tdx !== null && isSkip(a.tdx.mrservicetd)) {
    risks.push(`tdx.mrservicetd skipped: a TD with a migration TD bound (which can export its memory) ${passes}`);
  }
  if (a.tdx !== null && isSkip(a.tdx.acceptedTcbStatuses)) {
    risks.push(
      `tdx.acceptedTcbStatuses skipped: a TD on a platform Intel rates out of date or revoked, or with a revoked PCK certificate, ${passes}`,
    );
  } else if (a.tdx !== null && Array.isArray(a.tdx.acceptedTcbStatuses)) {
    risks.push(
      `tdx.acceptedTcbStatuses has no minimumTcbEvaluationDataNumber: older Intel collateral, still within its validity, that rates the platform better ${passes}`,
    );
  }
  const rtmrSets = a.tdx === null ? [] : "allowed" in a.tdx.rtmrs ? a.tdx.rtmrs.allowed : [a.tdx.rtmrs];
  if (rtmrSets.some((set) => isSkip(set[1]) || isSkip(set[2]))) {
    risks.push(`tdx.rtmrs[1]/[2] skipped: MRTD covers the firmware only, so any kernel and image ${passes}`);
  }
  // Azure: the schema requires the paravisor's measurement and an OS PCR; what is left is the VM's
  // own configuration and the paravisor guest's debug flag.
  if (a.azure !== null) {
    if (a.azure.snp?.debugAllowed === true || a.azure.tdx?.debugAllowed === true) {
      risks.push("azure.snp/tdx.debugAllowed: a debuggable confidential VM's memory is open to the host");
    }
    if (a.azure.tdx !== null && isSkip(a.azure.tdx.mrservicetd)) {
      risks.push(`azure.tdx.mrservicetd skipped: a paravisor TD with a migration TD bound ${passes}`);
    }
    if (!a.azure.secureBootRequired) {
      risks.push(`azure.secureBootRequired false: a VM booted without Secure Boot ${passes}`);
    }
    if (a.azure.consoleAllowed) {
      risks.push(`azure.consoleAllowed: a VM with a serial console enabled (a way in besides the image) ${passes}`);
    }
  }
  return risks;
}
