// The shapes that cross between the Rust core and the web view. They are generated from the Rust
// types (src-tauri/src/ui_types.rs, ts-rs) into ./generated/types.ts, so they are written once;
// a Rust test fails when that file is stale.

export type {
  AgentView,
  ApprovalDecision,
  ApprovalRequest,
  ClientEvent,
  CommandError,
  ConnectionState,
  FileLimits,
  GatewayStatus,
  HistoryMessage,
  MessageState,
  PairLink,
  PeerPresence,
  Queued,
  Sent,
  SessionInfo,
  SessionSummary,
  Status,
  ToDesktop,
  WireFile,
} from "./generated/types";
