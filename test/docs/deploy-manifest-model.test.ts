/**
 * docs/deploy.md, step 2, tells an operator how to fill the manifest's `model` from what `cloister model
 * seal` printed. The schema's model has more fields than seal prints (`file`, `parameters`), and a
 * newcomer writing the manifest from the page cannot guess a field the page does not name. So every
 * field of the schema's model (manifests/schema.ts) must be named in step 2 in code marks: `file`,
 * `model.file` or `sealedAtRest: true`.
 *
 * The step also quotes the line `model seal` ends with, the whole `model` to paste, `…` where the
 * values are the model's: the page once said seal printed four of the fields and that the operator
 * adds `file` and `parameters`, which seal had printed for long. So the line is compared with what
 * `model seal` prints for a file sealed under the page's names.
 */

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ManifestSchema } from "../../manifests/schema.ts";
import { REPO_ROOT, runCloister } from "../helpers/cli.ts";
import { oneTensorModel } from "../helpers/one-tensor-model.ts";
import { testDirectory } from "../helpers/test-directory.ts";

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

const SEAL_LINE = "set in the manifest's model: ";

/** The step's quoted `model seal` line, as a pattern: each `…` stands for a value. */
function quotedSealLine(text: string): RegExp {
  const line = text.split("\n").find((candidate) => candidate.startsWith(SEAL_LINE));
  if (line === undefined) throw new Error(`docs/deploy.md step 2: expected a line beginning "${SEAL_LINE}"`);
  const escaped = line.split("…").map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  return new RegExp(`^${escaped.join('[^,"]+')}$`);
}

describe("docs/deploy.md step 2 and the manifest's model", () => {
  it("names every field of the schema's model", () => {
    expect(MODEL_FIELDS).toContain("parameters");
    expect(unnamedModelFields(stepTwo(readFileSync(DEPLOY, "utf8")), MODEL_FIELDS)).toEqual([]);
  });

  it("reports a field the step does not name", () => {
    const text = "`model` gets `sha256`, `model.file` and `sealedAtRest: true`; parameters too.";
    expect(unnamedModelFields(text, ["file", "sha256", "sealedAtRest", "parameters"])).toEqual(["parameters"]);
  });

  it("quotes the line model seal prints, every field of it", async () => {
    const dir = await testDirectory("deploy-seal-");
    const model = join(dir, "llama-8b.gguf");
    const key = join(dir, "llama-8b-v1.jwk");
    await oneTensorModel(model, 64);
    const keygen = await runCloister(["kbs", "keygen", "--key-id", "llama-8b-v1", "--out", key]);
    expect(keygen.code, keygen.stderr).toBe(0);
    const seal = await runCloister(["model", "seal", "--key", key, model, join(dir, "llama-8b.gguf.sealed")]);
    expect(seal.code, seal.stderr).toBe(0);
    const printed = seal.stdout.split("\n").find((line) => line.startsWith(SEAL_LINE));
    expect(printed).toBeDefined();
    expect(printed).toMatch(quotedSealLine(stepTwo(readFileSync(DEPLOY, "utf8"))));
  });

  it("tells a quoted line that differs from the printed one", () => {
    const printed = `${SEAL_LINE}{"file":"a.sealed","sha256":"ab","sizeBytes":9,"parameters":64,"sealedAtRest":true}`;
    expect(printed).toMatch(
      quotedSealLine(
        `x\n${SEAL_LINE}{"file":"a.sealed","sha256":"…","sizeBytes":…,"parameters":…,"sealedAtRest":true}\n`,
      ),
    );
    expect(printed).not.toMatch(quotedSealLine(`${SEAL_LINE}{"sha256":"…","sizeBytes":…,"sealedAtRest":true}`));
    expect(() => quotedSealLine("`model seal` printed the fields")).toThrow(/expected a line beginning/);
  });
});
