import { loadChatTemplate } from '../../templates/chat';
import type { ConfigRule } from './types';

/** Two exchanges: enough to see whether a template renders earlier turns the same once later ones follow. */
const PROBE = [
  { role: 'user', content: 'Hi' },
  { role: 'assistant', content: 'Hello' },
  { role: 'user', content: 'Bye' },
  { role: 'assistant', content: 'Goodbye' },
] as const;

/**
 * config/chat-template (error): chat data (data.format a chat format, given or detected) with no chat template to
 * render it — none in chat_template:, none in the model folder — or one the engine cannot train turn by turn (it
 * fails on a plain conversation, or is not prefix-stable). On chat_template when it is written, else on model.
 */
export const chatTemplate: ConfigRule = {
  id: 'chat-template',
  codes: ['config/chat-template'],
  check({ config, modelDir, rangeOf, doc }, report) {
    // A hub model not in the cache: the engine reads its template when it downloads it (config/model-unchecked says so).
    if (config.data.format === 'template' || (config.chat_template === null && modelDir === null)) return;
    const at = rangeOf(doc.has('chat_template') ? ['chat_template'] : ['model']);
    const loaded = loadChatTemplate(config.chat_template, modelDir);
    let message = loaded.ok ? null : loaded.message;
    if (loaded.ok) {
      try {
        loaded.template.segments(PROBE.map((t) => ({ ...t })));
      } catch (error) {
        message = (error as Error).message;
      }
    }
    if (message) report({ range: at, severity: 'error', code: 'config/chat-template', message });
  },
};
