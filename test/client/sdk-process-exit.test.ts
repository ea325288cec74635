/**
 * README "Using the SDK" says nothing needs closing: a program that connected, streamed (leaving a
 * stream early too) and completed holds nothing that keeps Node.js running afterwards, so it exits
 * when its code is done. A child process does that against a deployment on loopback and prints what
 * keeps its event loop alive (process.getActiveResourcesInfo) before connecting and after.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../helpers/cli.ts";
import { closeServers, devPolicy, serveDeployment } from "./helpers.ts";

afterEach(closeServers);

const CHILD = `
import { connect } from "./client/sdk.ts";
import { parseClientPolicy } from "./client/policy.ts";
const before = process.getActiveResourcesInfo();
const policy = parseClientPolicy(process.env.CLOISTER_TEST_POLICY);
const session = await connect({ url: process.env.CLOISTER_TEST_URL, policy, apiKey: "test-api-key-0000" });
for await (const event of session.chat([{ role: "user", content: "hello" }])) break;
let text = "";
for await (const event of session.chat([{ role: "user", content: "hello" }])) if (event.type === "text") text += event.text;
const answer = await session.complete("hello", { maxTokens: 4 });
await new Promise((resolve) => setImmediate(resolve));
console.log(JSON.stringify({ before, after: process.getActiveResourcesInfo(), text, complete: answer.text }));
// Pipes are written synchronously on Linux: what a leak keeps alive is found above, not by waiting here.
process.exit(0);
`;

describe("a program using the SDK", () => {
  it("holds no timer or socket that keeps Node.js running once its requests are done, without closing anything", async () => {
    const { url } = await serveDeployment();
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ["--no-warnings", "--import", "tsx", "--input-type=module", "-e", CHILD],
      {
        cwd: REPO_ROOT,
        timeout: 120_000,
        env: { ...process.env, CLOISTER_TEST_URL: url, CLOISTER_TEST_POLICY: JSON.stringify(await devPolicy()) },
      },
    );
    const result = JSON.parse(stdout.trim()) as { before: string[]; after: string[]; text: string; complete: string };
    expect(result.text).toBe("ok");
    expect(result.complete).toBe("ok");
    expect(result.after.sort()).toEqual(result.before.sort());
  });
});
