/**
 * Chat datasets (docs/chat-datasets.md), the one import for lint, evaluation and generation: record formats and
 * turn checks in chat-turns.ts, the chat template (loading, rendering, trained segments, stop marker) in
 * chat-template.ts.
 */
export { CHAT_FORMATS, detectFormat, toTurns, type ChatFormat, type ChatProblem, type ChatProblemKind, type DataFormat, type Turn } from './chat-turns';
export { chatTemplateIdentity, conversationParts, loadChatTemplate, type ChatSegment, type ChatTemplate, type ChatTemplateLoad } from './chat-template';
