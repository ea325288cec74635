/**
 * Deployment manifests: schema, signing and verification, and the digest bound into report_data.
 * Platform-neutral (zod, jose, WebCrypto), so the browser client verifies manifests with this code.
 * The CLI (cli.ts, cli-impl.ts) and the development example (dev.ts) are not re-exported here.
 */
export { digestHex, manifestDigest } from "./digest.ts";
export * from "./errors.ts";
export {
  type Manifest,
  ManifestSchema,
  PII_ENTITIES,
  type PiiEntity,
  parseManifest,
  type RequestRule,
  TEE_PLATFORMS,
  type TeePlatform,
} from "./schema.ts";
export {
  generateManifestSigningKey,
  MANIFEST_ALGS,
  MANIFEST_JWS_TYP,
  type ManifestAlg,
  type ManifestSigningKeyPair,
  signManifest,
  type VerifiedManifest,
  verifyManifest,
} from "./sign.ts";
