/**
 * The development manifest (manifests/examples/dev.json: the tiny model on the simulated TEEs) and
 * `devManifest(overrides)`, which builds a valid variant of it for tests and the demo. The result is
 * always checked against the schema, so an override cannot produce an invalid manifest silently.
 */
import devJson from "./examples/dev.json" with { type: "json" };
import { type Manifest, parseManifest } from "./schema.ts";

/** Deep partial: objects merge field by field; arrays and scalars replace. */
export type ManifestOverrides = {
  [K in keyof Manifest]?: Manifest[K] extends readonly unknown[] ? Manifest[K] : DeepPartial<Manifest[K]>;
};
type DeepPartial<T> = T extends readonly unknown[] ? T : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T;

/** The example development manifest, checked. */
export const DEV_MANIFEST: Manifest = parseManifest(devJson);

export function devManifest(overrides: ManifestOverrides = {}): Manifest {
  return parseManifest(merge(structuredClone(DEV_MANIFEST), overrides));
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function merge(base: unknown, override: unknown): unknown {
  if (override === undefined) return base;
  if (!isPlainObject(base) || !isPlainObject(override)) return structuredClone(override);
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(override)) out[key] = merge(base[key], value);
  return out;
}
