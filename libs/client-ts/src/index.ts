/** @chat/client: framework-free TypeScript client for the chat gateway. */
export { ChatClient, deriveWsUrl } from "./client.js";
export { ChatError, errorFromFrame, errorFromProblem } from "./errors.js";
export type { ChatErrorInit } from "./errors.js";
export { memoryOutboxStorage, indexedDbOutboxStorage } from "./outbox.js";
export { Backoff } from "./backoff.js";
export { Sequencer, ConvOrder } from "./ordering.js";
export type {
  EventKind,
  Attachment,
  ChatEvent,
  User,
  Role,
  Member,
  Conversation,
  Receipt,
  Typing,
  Presence,
  SearchHit,
  SearchPage,
  Media,
  ConnectionStatus,
  ConnectionState,
  OutboxState,
  OutgoingMessage,
  OutboxStorage,
  ClientOptions,
  WebSocketCtor,
} from "./types.js";
