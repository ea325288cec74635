/**
 * README.md lists the values `cloister proxy` takes of parameters it does not honour, by endpoint:
 * those taken on both, those for chat only, those for completions only. Each is asked of the proxy
 * on both endpoints: taken (200) where its group says, refused (400 unsupported_parameter) on the
 * other, and named in that group of the sentence alone. A value listed without its endpoint, which
 * an app on the other one would be refused, shows here.
 */
import { afterEach, describe, expect, it } from "vitest";
import { attestedModelId, createProxyApp } from "../../client/proxy.ts";
import { closeServers, connectTo } from "../client/helpers.ts";
import { pageSection } from "../helpers/doc-pages.ts";

afterEach(closeServers);

type Group = "both" | "chat" | "completions";

/** Each taken value, the words README names it by, and its group. */
const TAKEN: readonly { name: string; value: unknown; words: string; group: Group }[] = [
  { name: "n", value: 1, words: "`n: 1`", group: "both" },
  { name: "logit_bias", value: {}, words: "an empty `logit_bias`", group: "both" },
  { name: "store", value: false, words: "`store: false`", group: "both" },
  { name: "logprobs", value: false, words: "`logprobs: false`", group: "both" },
  { name: "response_format", value: { type: "text" }, words: '`response_format: {"type": "text"}`', group: "both" },
  { name: "frequency_penalty", value: 0, words: "zero penalties", group: "both" },
  { name: "presence_penalty", value: 0, words: "zero penalties", group: "both" },
  { name: "user", value: "u-1", words: "the identifier `user`", group: "both" },
  { name: "tool_choice", value: "none", words: '`tool_choice: "none"`', group: "chat" },
  { name: "function_call", value: "none", words: '`function_call: "none"`', group: "chat" },
  { name: "parallel_tool_calls", value: true, words: "either `parallel_tool_calls`", group: "chat" },
  { name: "parallel_tool_calls", value: false, words: "either `parallel_tool_calls`", group: "chat" },
  { name: "metadata", value: {}, words: "an empty `metadata`", group: "chat" },
  { name: "modalities", value: ["text"], words: '`modalities: ["text"]`', group: "chat" },
  { name: "safety_identifier", value: "s-1", words: "`safety_identifier`", group: "chat" },
  { name: "prompt_cache_key", value: "k-1", words: "`prompt_cache_key`", group: "chat" },
  { name: "echo", value: false, words: "`echo: false`", group: "completions" },
  { name: "best_of", value: 1, words: "`best_of: 1`", group: "completions" },
];

/** README's sentence, cut at its groups' openings. */
function groups(): Record<Group, string> {
  const sentence = pageSection("README.md", "are taken: on both endpoints", "The identifiers are");
  const chat = sentence.indexOf("; for chat also ");
  const completions = sentence.indexOf("; for completions also ");
  expect({ chat: chat > 0, completions: completions > chat }).toEqual({ chat: true, completions: true });
  return {
    both: sentence.slice(0, chat),
    chat: sentence.slice(chat, completions),
    completions: sentence.slice(completions),
  };
}

describe("README on the proxy's neutral values, by endpoint", () => {
  it("names each in its endpoint's group alone, and the proxy takes it there and refuses it on the other", async () => {
    const sentence = groups();
    const { session } = await connectTo({});
    const token = "local-token-0123456789abcdef0123456789";
    const app = createProxyApp({ session, token });
    const model = attestedModelId(session);
    const bodies = {
      chat: ["/v1/chat/completions", { model, messages: [{ role: "user", content: "hi" }] }],
      completions: ["/v1/completions", { model, prompt: "hi" }],
    } as const;
    for (const { name, value, words, group } of TAKEN) {
      const named = (["both", "chat", "completions"] as const).filter((g) => sentence[g].includes(words));
      expect({ name, named }).toEqual({ name, named: [group] });
      for (const endpoint of ["chat", "completions"] as const) {
        const [path, body] = bodies[endpoint];
        const response = await app.request(path, {
          method: "POST",
          headers: { host: "127.0.0.1", authorization: `Bearer ${token}`, "content-type": "application/json" },
          body: JSON.stringify({ ...body, [name]: value }),
        });
        const taken = group === "both" || group === endpoint;
        const answer = (await response.json()) as { error?: { code: string } };
        expect({ name, endpoint, status: response.status, code: answer.error?.code }).toEqual({
          name,
          endpoint,
          status: taken ? 200 : 400,
          code: taken ? undefined : "unsupported_parameter",
        });
      }
    }
  });
});
