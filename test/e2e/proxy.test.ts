/**
 * The OpenAI-compatible local proxy end to end: the official `openai` SDK, unmodified, talks to
 * the proxy on 127.0.0.1, which seals every request through a verified session to a real simulated
 * deployment (enclave and host as processes). Also `cloister proxy` as a process: it verifies
 * before it listens (warning about what its policy lets through), and refuses to start in front of an enclave the policy does not accept.
 */
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import OpenAI, { type APIError } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { attestedModelId, createProxyApp } from "../../client/proxy.ts";
import { connect, textHash, verifyReceipt } from "../../client/sdk.ts";
import { listen, type RunningServer } from "../../enclave/http.ts";
import { CLI, runCloister } from "../helpers/cli.ts";
import {
  bootDeployment,
  connectionArgs,
  type E2eDeployment,
  writeWrongMeasurementPolicy,
} from "./helpers/deployment.ts";

const GREEDY_CHAT_ANSWER =
  " The host only forwards sealed bytes and the enclave keeps every prompt private inside a confidential virtual machine.";
const QUESTION = "What does the enclave do?";
const TOKEN = `cpx_${"ab".repeat(32)}`;

let deployment: E2eDeployment;
let proxy: RunningServer;
let openai: OpenAI;
let model: string;
let signingKey: Uint8Array;
const proxyLog: string[] = [];

beforeAll(async () => {
  deployment = await bootDeployment("sim-snp");
  const session = await connect({
    url: deployment.running.hostUrl,
    policy: deployment.files.policy,
    apiKey: deployment.files.apiKey,
  });
  model = attestedModelId(session);
  signingKey = session.enclave.signingPublicKey;
  proxy = await listen(createProxyApp({ session, token: TOKEN, log: (l) => proxyLog.push(l) }).fetch, "127.0.0.1", 0);
  openai = new OpenAI({ baseURL: `${proxy.url}/v1`, apiKey: TOKEN, maxRetries: 0 });
});

afterAll(async () => {
  await proxy?.close();
  await deployment?.stop();
});

const sealedRequests = () => deployment.hostAccessLog().filter((r) => r.path === "/v1/sealed").length;

describe("the openai SDK through the proxy", () => {
  it("lists the attested model only", async () => {
    const models = await openai.models.list();
    expect(models.data.map((m) => m.id)).toEqual(["cloister-dev/tiny.gguf"]);
    expect(model).toBe("cloister-dev/tiny.gguf");
  });

  it("models.retrieve: the attested model (its id, with a slash, percent-encoded by the SDK), else model_not_found", async () => {
    expect(await openai.models.retrieve(model)).toMatchObject({ id: model, object: "model" });
    const other = await openai.models.retrieve("gpt-4o").then(
      () => null,
      (e: unknown) => e as APIError,
    );
    expect(other).toMatchObject({ status: 404, code: "model_not_found", type: "invalid_request_error" });
  });

  it("chat.completions.create: the genuine answer, with usage, through the sealed path", async () => {
    const before = sealedRequests();
    const completion = await openai.chat.completions.create({
      model,
      messages: [{ role: "user", content: QUESTION }],
    });
    expect(completion.object).toBe("chat.completion");
    expect(completion.choices[0]?.message).toMatchObject({ role: "assistant", content: GREEDY_CHAT_ANSWER });
    expect(completion.choices[0]?.finish_reason).toBe("stop");
    expect(completion.usage).toMatchObject({ completion_tokens: 19 });
    // The enclave's receipt rides along (a field OpenAI clients ignore) and verifies for this answer.
    const receipt = (completion as unknown as { cloister: { receipt: string } }).cloister.receipt;
    expect((await verifyReceipt(receipt, signingKey)).answerHash).toBe(textHash(GREEDY_CHAT_ANSWER));
    await deployment.waitForLog(() => sealedRequests() > before);
    // The SDK's _request_id (the proxy's x-request-id) is the one the proxy's log line names.
    expect(completion._request_id).toMatch(/^req_[0-9a-f]{32}$/);
    expect(proxyLog.map((line) => JSON.parse(line).xRequestId)).toContain(completion._request_id);
  });

  it("streams: the chunks add up to the genuine answer, then finish_reason and usage", async () => {
    const { data: stream, request_id } = await openai.chat.completions
      .create({
        model,
        messages: [{ role: "user", content: QUESTION }],
        stream: true,
        stream_options: { include_usage: true },
      })
      .withResponse();
    expect(request_id).toMatch(/^req_[0-9a-f]{32}$/);
    let text = "";
    const finishReasons: (string | null)[] = [];
    let usage: unknown = null;
    let receipt = "";
    for await (const chunk of stream) {
      receipt ||= (chunk as unknown as { cloister?: { receipt: string } }).cloister?.receipt ?? "";
      const choice = chunk.choices[0];
      if (choice !== undefined) {
        text += choice.delta.content ?? "";
        finishReasons.push(choice.finish_reason);
      }
      if (chunk.usage != null) usage = chunk.usage;
    }
    expect(text).toBe(GREEDY_CHAT_ANSWER);
    expect(finishReasons.at(-1)).toBe("stop");
    expect(finishReasons.slice(0, -1).every((r) => r === null)).toBe(true);
    expect(usage).toMatchObject({ completion_tokens: 19 });
    expect((await verifyReceipt(receipt, signingKey)).answerHash).toBe(textHash(GREEDY_CHAT_ANSWER));
  });

  it("completions.create (legacy) and generation parameters: max_tokens ends with finish_reason length", async () => {
    const completion = await openai.completions.create({ model, prompt: "The enclave", max_tokens: 3, seed: 7 });
    expect(completion.choices[0]?.finish_reason).toBe("length");
    expect(completion.usage?.completion_tokens).toBe(3);
    expect(completion.choices[0]?.text.length).toBeGreaterThan(0);
  });

  it("refuses what it cannot honour, in OpenAI's error shape: another model, n > 1, tools, a wrong token", async () => {
    const refusal = (promise: Promise<unknown>) =>
      promise.then(
        () => null,
        (e: unknown) => e as APIError,
      );
    const otherModel = await refusal(
      openai.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: QUESTION }] }),
    );
    expect(otherModel).toMatchObject({ status: 404, code: "model_not_found", param: "model" });
    expect(otherModel?.message).toContain("cloister-dev/tiny.gguf");
    const two = await refusal(
      openai.chat.completions.create({ model, n: 2, messages: [{ role: "user", content: QUESTION }] }),
    );
    expect(two).toMatchObject({ status: 400, code: "unsupported_parameter", param: "n" });
    expect(two?.requestID).toMatch(/^req_[0-9a-f]{32}$/);
    const toolResult = await refusal(
      openai.chat.completions.create({
        model,
        messages: [
          { role: "user", content: QUESTION },
          { role: "tool", tool_call_id: "call_1", content: "42" },
        ],
      }),
    );
    expect(toolResult).toMatchObject({ status: 400, code: "unsupported_parameter", param: "messages[1].role" });
    expect(toolResult?.message).toContain("tools are not supported");
    const tools = await refusal(
      openai.chat.completions.create({
        model,
        messages: [{ role: "user", content: QUESTION }],
        tools: [{ type: "function", function: { name: "f", parameters: {} } }],
      }),
    );
    expect(tools).toMatchObject({ status: 400, code: "unsupported_parameter", param: "tools" });
    const stranger = new OpenAI({ baseURL: `${proxy.url}/v1`, apiKey: "not-the-token", maxRetries: 0 });
    expect(await refusal(stranger.models.list())).toMatchObject({ status: 401, code: "invalid_api_key" });
  });

  it("takes what an app sends by default that changes nothing (tool_choice none, an empty logit_bias), refuses max_tokens beside max_completion_tokens", async () => {
    const neutral = await openai.chat.completions.create({
      model,
      messages: [{ role: "user", content: QUESTION }],
      max_completion_tokens: 3,
      tool_choice: "none",
      parallel_tool_calls: false,
      logit_bias: {},
      metadata: {},
      modalities: ["text"],
      store: false,
      n: 1,
      response_format: { type: "text" },
      user: "u-1",
    });
    expect(neutral.choices[0]?.finish_reason).toBe("length");
    const both = await openai.chat.completions
      .create({ model, messages: [{ role: "user", content: QUESTION }], max_tokens: 3, max_completion_tokens: 4 })
      .then(
        () => null,
        (e: unknown) => e as APIError,
      );
    expect(both).toMatchObject({ status: 400, code: "invalid_parameter_combination", param: "max_tokens" });
    expect(both?.headers?.get("x-should-retry")).toBe("false");
  });

  it("logs requests without their content", () => {
    const text = proxyLog.join("\n");
    expect(proxyLog.length).toBeGreaterThan(5);
    expect(text).not.toContain("enclave do");
    expect(text).not.toContain("forwards sealed");
    expect(text).not.toContain(TOKEN);
  });
});

describe("cloister proxy (the command)", () => {
  // The token file's directory does not exist yet: the proxy makes it.
  const tokenFile = () => join(deployment.dir, "proxy", "token");
  const args = (policy: string, port = "0") => [
    "proxy",
    ...connectionArgs(deployment, policy),
    "--port",
    port,
    "--token-file",
    tokenFile(),
  ];

  it("refuses to start in front of an enclave its policy does not accept (exit 1, nothing listens)", async () => {
    const badPath = await writeWrongMeasurementPolicy(deployment, "proxy-bad-policy.json");
    const run = await runCloister(args(badPath), { cwd: deployment.dir });
    expect(run.code).toBe(1);
    expect(run.stdout).not.toContain("listening");
    expect(run.stderr).toMatch(/^cloister: SNP_MEASUREMENT_NOT_ALLOWED: /);
  });

  it("verifies, listens on 127.0.0.1, answers with its token, and stops on SIGTERM", async () => {
    const child = spawn(process.execPath, [CLI, ...args(deployment.files.policyPath)], { cwd: deployment.dir });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    const deadline = Date.now() + 30_000;
    while (!/listening on (http:\/\/127\.0\.0\.1:\d+)\/v1/.test(stdout) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const url = /listening on (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(stdout)?.[1];
    try {
      expect(url).toBeDefined();
      // The simulator deployment's policy trusts the simulator: said as `cloister attest` says it.
      expect(stderr).toContain("WARNING: policy: trusts the INSECURE simulator");
      const token = (await readFile(tokenFile(), "utf8")).trim();
      expect(token).toMatch(/^cpx_[0-9a-f]{64}$/);
      const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: token, maxRetries: 0 });
      const completion = await client.chat.completions.create({
        model,
        messages: [{ role: "user", content: QUESTION }],
      });
      expect(completion.choices[0]?.message.content).toBe(GREEDY_CHAT_ANSWER);
      // A second proxy on the same port says so and exits (usage error), the first keeps serving.
      const second = await runCloister(args(deployment.files.policyPath, new URL(url as string).port), {
        cwd: deployment.dir,
      });
      expect(second.code).toBe(2);
      expect(second.stderr).toMatch(/--port \d+: cannot listen on 127\.0\.0\.1 \(EADDRINUSE\)/);
      expect((await client.models.list()).data).toHaveLength(1);
      // Stopped while an app's answer streams: the answer goes on to its end (a second signal would
      // stop at once), then the proxy exits 0.
      const stream = await client.chat.completions.create({
        model,
        messages: [{ role: "user", content: QUESTION }],
        stream: true,
      });
      let text = "";
      let finishReason: string | null = null;
      for await (const chunk of stream) {
        if (!child.killed) child.kill("SIGTERM");
        text += chunk.choices[0]?.delta.content ?? "";
        finishReason = chunk.choices[0]?.finish_reason ?? finishReason;
      }
      expect(text).toBe(GREEDY_CHAT_ANSWER);
      expect(finishReason).toBe("stop");
    } finally {
      if (!child.killed) child.kill("SIGTERM");
    }
    expect(await exited).toBe(0);
    expect(stderr).not.toContain("client_gone");
  });
});
