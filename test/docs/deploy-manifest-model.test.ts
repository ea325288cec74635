/**
 * docs/deploy.md, step 2, tells an operator how to fill the manifest's `model` from what `cloister model
 * seal` printed. The schema's model has more fields than seal prints (`file`, `parameters`), and a
 * newcomer writing the manifest from the page cannot guess a field the page does not name. So every
 * field of the schema's model (manifests/schema.ts) must be named in step 2 in code marks: `file`,
 * `model.file` or `sealedAtRest: true`.
 */

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ManifestSchema } from "../../manifests/schema.ts";
import { REPO_ROOT } from "../helpers/cli.ts";

const DEPLOY = join(REPO_ROOT, "docs", "deploy.md");

/** The text of step 2 (from its heading to the next step's). */
function stepTwo(markdown: string): string {
  const start = markdown.indexOf("\n## 2. ");
  const end = markdown.indexOf("\n## 3. ");
  if (start < 0 || end < start) throw new Error("docs/deploy.md: expected the headings of steps 2 and 3");
  return markdown.slice(start, end);
}

/** The model fields the text does not name in code marks. */
function unnamedModelFields(text: string, fields: readonly string[]): string[] {
  return fields.filter((field) => !new RegExp(`\`(?:model\\.)?${field}(?:\`|: )`).test(text));
}

const MODEL_FIELDS = Object.keys(ManifestSchema.shape.model.shape);

describe("docs/deploy.md step 2 and the manifest's model", () => {
  it("names every field of the schema's model", () => {
    expect(MODEL_FIELDS).toContain("parameters");
    expect(unnamedModelFields(stepTwo(readFileSync(DEPLOY, "utf8")), MODEL_FIELDS)).toEqual([]);
  });

  it("reports a field the step does not name", () => {
    const text = "`model` gets `sha256`, `model.file` and `sealedAtRest: true`; parameters too.";
    expect(unnamedModelFields(text, ["file", "sha256", "sealedAtRest", "parameters"])).toEqual(["parameters"]);
  });
});
