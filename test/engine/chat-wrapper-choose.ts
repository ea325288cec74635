/**
 * The chat wrapper of a model already loaded, as the engine chooses it (enclave/engine.ts): a plan
 * from its metadata and file name (planChatWrapperFor), chosen, then dropped. Shared by the chat
 * wrapper's tests.
 */
import type { ChatWrapper, LlamaModel } from "node-llama-cpp";
import { type ChooseChatWrapperOptions, planChatWrapperFor } from "../../enclave/engine/chat-wrapper.ts";

export async function chooseFor(model: LlamaModel, options: ChooseChatWrapperOptions = {}): Promise<ChatWrapper> {
  const plan = planChatWrapperFor(model.fileInfo, model.filename, options);
  try {
    return await plan.choose(model);
  } finally {
    plan.dispose();
  }
}
