/**
 * docs/deploy.md, step 6, "Upgrades": an operator rolling a new image through a host's pool must do
 * each member's steps in an order, or lose something. The page once said only "replace enclaves one
 * at a time (SIGTERM drains each …)": it did not say to take a member's last audit checkpoint before
 * stopping it (a stopped boot gives none, `WRONG_ENCLAVE_KEY`, so its stored log can no longer be
 * checked against a checkpoint), that the replacement must come back at the same URL (the host
 * takes no new member without a restart), nor to wait for the host to offer it again (a new key id)
 * before stopping the next (a pool of two stopped one after the other has no member: 503
 * `NO_ENCLAVE_AVAILABLE`). And `cloister up --enclaves 2`, the page's own local pool, is no place to
 * rehearse it: when one of its enclaves exits, `up` stops everything it started. The README's "A pool
 * of enclaves" once offered `up --enclaves 2` as the local pool and said "Restart pool members one at a
 * time" just before how `up` stops, as if `up` could: it says what `up`'s pool is for, and points here.
 */

import { describe, expect, it } from "vitest";
import { buildProgram, commandTree } from "../../client/cli/program.ts";
import { pageSection } from "../helpers/doc-pages.ts";

/** Step 6's first paragraph, white space runs as one space. */
const upgradeParagraph = () => pageSection("docs/deploy.md", "\n## 6. Upgrades", "\n**A new model.**");

/** A member's steps, in the order they must be done. */
const MEMBER_STEPS = [
  "at the URL the host's `--enclave-url` gives it",
  "`cloister audit checkpoint --enclave <its key id>`",
  "keep the `audit verify` command it prints",
  "stop it (SIGTERM drains it",
  "start the new image at the same URL",
  "wait until the host's log says `pool: enclave N is ready (key id …)` with a new key id",
  "before the next",
  "remove the old values from both policies",
] as const;

/** Where each step is in the text, -1 for one left out. */
const positions = (text: string, steps: readonly string[]) => steps.map((step) => text.indexOf(step));

/** Whether the steps are all there, each after the one before it. */
function inOrder(text: string, steps: readonly string[]): boolean {
  const at = positions(text, steps);
  return at.every((position, i) => position >= 0 && (i === 0 || position > at[i - 1]!));
}

/** The command's full name (`audit checkpoint`) and its long options. */
function commandOptions(): Map<string, string[]> {
  const options = new Map<string, string[]>();
  for (const command of commandTree(buildProgram())) {
    const names: string[] = [];
    for (let c: typeof command | null = command; c?.parent; c = c.parent) names.unshift(c.name());
    options.set(
      names.join(" "),
      command.options.map((option) => option.long ?? ""),
    );
  }
  return options;
}

describe("docs/deploy.md step 6: replacing a pool's members", () => {
  it("names each member's steps in the order they work", () => {
    const paragraph = upgradeParagraph();
    expect(
      MEMBER_STEPS.filter((_, i) => positions(paragraph, MEMBER_STEPS)[i]! < 0),
      "steps left out",
    ).toEqual([]);
    expect(inOrder(paragraph, MEMBER_STEPS)).toBe(true);
  });

  it("tells steps out of order or left out", () => {
    expect(
      inOrder("stop it (SIGTERM drains it), then `cloister audit checkpoint --enclave <its key id>`", [
        "`cloister audit checkpoint --enclave <its key id>`",
        "stop it (SIGTERM drains it",
      ]),
    ).toBe(false);
    expect(inOrder("stop it (SIGTERM drains it)", ["stop it (SIGTERM drains it", "before the next"])).toBe(false);
    expect(inOrder("a, then b", ["a", "b"])).toBe(true);
  });

  it("names commands and options the program has", () => {
    const paragraph = upgradeParagraph();
    const options = commandOptions();
    expect(paragraph).toContain("`cloister audit checkpoint --enclave <its key id>`");
    expect(options.get("audit checkpoint")).toContain("--enclave");
    expect(paragraph).toContain("`cloister up --enclaves 2` stops all it started when one of its enclaves exits");
    expect(options.get("up")).toContain("--enclaves");
    expect(options.get("host")).toContain("--enclave-url");
  });
});

describe('README.md, "A pool of enclaves": `cloister up`\'s pool and a rolling upgrade', () => {
  const section = () => pageSection("README.md", "\n## A pool of enclaves", "\n## Sealed models");

  it("says `up`'s pool is no rehearsal of an upgrade, and points to step 6 for one", () => {
    const text = section();
    expect(text).toContain(
      "`cloister up --enclaves 2` is for trying how a pool routes, not for rehearsing a member's restart or an upgrade: " +
        "when one of its enclaves exits, a SIGTERM to it included, `up` stops everything it started.",
    );
    expect(text).toContain(
      "follow `docs/deploy.md`, step 6 (to rehearse it or a failover, start the enclaves and the host by hand)",
    );
    expect(upgradeParagraph()).toContain("start the enclaves and the host by hand");
    expect(commandOptions().get("up")).toContain("--enclaves");
  });

  it("says nothing that reads as `up` restarting members one at a time", () => {
    // The section's stop paragraph tells how `up` stops: a restart advice next to it reads as `up`'s.
    expect(section()).toContain("`cloister up` stops the host first");
    expect(section()).not.toContain("Restart pool members one at a time");
  });
});
