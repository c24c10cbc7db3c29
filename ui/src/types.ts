// The shapes the Rust core sends (serde JSON of clawtray_client::state and clawtray_proto::chat).
// Keep in step with those enums; the browser tests exercise every variant.

export type PeerPresence = "online" | "away";

export type ConnectionState =
  | { state: "unpaired" }
  | { state: "pairing" }
  | { state: "connecting" }
  | { state: "handshaking" }
  | { state: "online"; peer: PeerPresence }
  | { state: "waiting_to_retry"; next_try_at_ms: number; last_error: string }
  | { state: "needs_repairing"; reason: string };

export type MessageState = "queued" | "sent" | "delivered" | "answered";

export interface HistoryMessage {
  role: string;
  text: string;
  timestamp?: number;
}

export type ToDesktop =
  | { type: "chat_ack"; id: string; run_id: string }
  | { type: "chat_delta"; run_id: string; seq: number; text: string; replace?: boolean }
  | { type: "chat_reply"; run_id: string; text: string }
  | { type: "chat_typing"; on: boolean }
  | { type: "chat_aborted"; run_id: string }
  | { type: "chat_error"; run_id?: string; message: string }
  | { type: "history"; messages: HistoryMessage[] }
  | { type: "agent_status"; gateway: "connected" | "disconnected" };

export type ClientEvent =
  | { kind: "state"; state: ConnectionState }
  | { kind: "chat"; message: ToDesktop }
  | { kind: "message"; id: string; state: MessageState }
  | { kind: "notice"; message: string };

export interface SessionInfo {
  relay_url: string;
  session_id: string;
  agent_name: string;
  paired_at_ms: number;
}

export interface Status {
  state: ConnectionState;
  session: SessionInfo | null;
  queued: { id: string; text: string }[];
}

/** Errors cross from Rust as `{ code, message }`: branch on `code`, show `message`. */
export interface CommandError {
  code: string;
  message: string;
}
