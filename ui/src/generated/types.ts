// Generated from the Rust types by src-tauri/src/ui_types.rs (ts-rs). Do not edit:
// run `CLAWTRAY_WRITE_UI_TYPES=1 cargo test -p clawtray ui_types` after changing them.

/**
 * Whether the agent's end is connected to the relay.
 */
export type PeerPresence = "online" | "away";

/**
 * The client's connection state.
 */
export type ConnectionState = { "state": "unpaired" } | { "state": "pairing" } | { "state": "connecting" } | { "state": "handshaking" } | { "state": "online", 
/**
 * Whether the agent is there.
 */
peer: PeerPresence, } | { "state": "waiting_to_retry", 
/**
 * Unix milliseconds of the next attempt.
 */
next_try_at_ms: number, 
/**
 * What went wrong, in words.
 */
last_error: string, } | { "state": "refused", 
/**
 * What the relay said, in words.
 */
reason: string, 
/**
 * Unix milliseconds of the next attempt.
 */
next_try_at_ms: number, } | { "state": "needs_repairing", 
/**
 * Why, in words.
 */
reason: string, };

/**
 * Where a sent message is.
 */
export type MessageState = "queued" | "sent" | "delivered" | "answered";

/**
 * Whether the agent reaches its OpenClaw gateway.
 */
export type GatewayStatus = "connected" | "disconnected";

/**
 * One message of the history, as shown.
 */
export type HistoryMessage = { 
/**
 * The gateway's id for it, when it gives one (pages that overlap are deduplicated by it).
 */
id?: string, 
/**
 * `user` or `assistant` (or another gateway role).
 */
role: string, 
/**
 * Plain text.
 */
text: string, 
/**
 * Milliseconds since the epoch, when known.
 */
timestamp?: number, 
/**
 * Files it carried (what they were; their bytes stay with the gateway).
 */
files?: Array<FileSummary>, };

/**
 * One conversation (gateway session) of the agent.
 */
export type SessionSummary = { 
/**
 * The session key to send to (`main`, `work`, …).
 */
key: string, 
/**
 * A title, when the gateway has one (a label or a generated title).
 */
title?: string, 
/**
 * Last activity, milliseconds since the epoch, when known.
 */
updated_at_ms?: number, 
/**
 * A reply is being written in it now.
 */
running?: boolean, 
/**
 * The agent's default session: its chat messages carry no `session`.
 */
default?: boolean, };

/**
 * An answer to an exec approval, as the gateway names it.
 */
export type ApprovalDecision = "allow-once" | "allow-always" | "deny";

/**
 * A command the agent's gateway wants a person to approve before it runs.
 */
export type ApprovalRequest = { 
/**
 * The gateway's approval id.
 */
id: string, 
/**
 * The command line, exactly as it will run (show it as text, never as markup).
 */
command: string, 
/**
 * Its working directory, when the gateway says.
 */
cwd?: string, 
/**
 * Where it runs (`gateway`, a node's name), when the gateway says.
 */
host?: string, 
/**
 * The OpenClaw agent that asks, when the gateway says.
 */
agent_id?: string, 
/**
 * The conversation (gateway session key) it belongs to, when the gateway says.
 */
session_key?: string, 
/**
 * The gateway's warning about the command (risky parts), when it has one.
 */
warning?: string, 
/**
 * When it was asked, milliseconds since the epoch.
 */
created_at_ms: number, 
/**
 * When it expires (the gateway denies it then), milliseconds since the epoch.
 */
expires_at_ms: number, 
/**
 * The answers the gateway accepts for it (offer only these).
 */
allowed: Array<ApprovalDecision>, };

/**
 * What files the agent's gateway takes, decoded sizes in bytes.
 */
export type FileLimits = { 
/**
 * One file.
 */
max_bytes: number, 
/**
 * One image.
 */
max_image_bytes: number, 
/**
 * All files of one message together.
 */
max_message_bytes: number, };

/**
 * A file a message of the history carried, as the gateway lists it (its bytes stay with the
 * gateway: desktops show what it was, never fetch it).
 */
export type FileSummary = { 
/**
 * Its name.
 */
name: string, 
/**
 * Its MIME type, when the gateway says.
 */
mime?: string, 
/**
 * Its size in bytes, when the gateway says.
 */
size?: number, };

/**
 * agent → desktop.
 */
export type ToDesktop = { "type": "chat_ack", 
/**
 * The desktop's message id.
 */
id: string, 
/**
 * The gateway's run id.
 */
run_id: string, 
/**
 * The gateway session (conversation) it belongs to; absent: the agent's default one.
 */
session?: string, } | { "type": "chat_delta", 
/**
 * The run.
 */
run_id: string, 
/**
 * Per-run, strictly increasing (gaps allowed).
 */
seq: number, 
/**
 * Text to append (or, with `replace`, the whole new text).
 */
text: string, 
/**
 * The gateway replaced the reply so far: `text` is the whole text, not an increment.
 */
replace?: boolean, 
/**
 * The gateway session (conversation) it belongs to; absent: the agent's default one.
 */
session?: string, } | { "type": "chat_reply", 
/**
 * The run.
 */
run_id: string, 
/**
 * The whole reply text.
 */
text: string, 
/**
 * The gateway session (conversation) it belongs to; absent: the agent's default one.
 */
session?: string, } | { "type": "chat_typing", 
/**
 * On or off.
 */
on: boolean, 
/**
 * The gateway session (conversation) it belongs to; absent: the agent's default one.
 */
session?: string, } | { "type": "chat_aborted", 
/**
 * The run.
 */
run_id: string, 
/**
 * The gateway session (conversation) it belongs to; absent: the agent's default one.
 */
session?: string, } | { "type": "chat_error", 
/**
 * The run, when the error belongs to one.
 */
run_id?: string, 
/**
 * A sentence for people.
 */
message: string, 
/**
 * The gateway session (conversation) it belongs to; absent: the agent's default one.
 */
session?: string, } | { "type": "history", 
/**
 * Oldest first.
 */
messages: Array<HistoryMessage>, 
/**
 * The gateway session (conversation) it belongs to; absent: the agent's default one.
 */
session?: string, 
/**
 * The request's `before`: absent for the latest page (which replaces what is shown),
 * present for an older page (which goes above it).
 */
before?: string, 
/**
 * Pass this as `before` for the page before this one; absent: this page starts at the
 * conversation's first message.
 */
older?: string, } | { "type": "sessions", 
/**
 * The sessions.
 */
sessions: Array<SessionSummary>, } | { "type": "agent_status", 
/**
 * Connected or not.
 */
gateway: GatewayStatus, 
/**
 * The files the agent's gateway takes, when it said (older agents: absent).
 */
files?: FileLimits, } | { "type": "unpair" } | { "type": "approval_requested", 
/**
 * What, where, for whom, until when.
 */
approval: ApprovalRequest, } | { "type": "approval_resolved", 
/**
 * The approval id.
 */
id: string, 
/**
 * How it was answered (`None` when it expired or went away unanswered).
 */
decision?: ApprovalDecision, 
/**
 * Who answered, as the gateway names them, when it says.
 */
by?: string, } | { "type": "approval_refused", 
/**
 * The approval id.
 */
id: string, 
/**
 * A sentence for people.
 */
message: string, } | { "type": "approvals", 
/**
 * Oldest first.
 */
pending: Array<ApprovalRequest>, };

/**
 * What a [`crate::RelayClient`] tells its subscribers.
 */
export type ClientEvent = { "kind": "state", 
/**
 * The new state.
 */
state: ConnectionState, } | { "kind": "chat", 
/**
 * The message.
 */
message: ToDesktop, } | { "kind": "message", 
/**
 * The message id.
 */
id: string, 
/**
 * Its new state.
 */
state: MessageState, } | { "kind": "notice", 
/**
 * A sentence.
 */
message: string, };

/**
 * What the relay and the UI need to know about the pairing. Not secret.
 */
export type SessionInfo = { relay_url: string, session_id: string, agent_name: string, paired_at_ms: number, };

/**
 * A message still waiting for the agent.
 */
export type Queued = { id: string, text: string, 
/**
 * The agent's session it goes to (absent: its default one).
 */
session?: string, };

/**
 * One slot as it is now: for the window's switcher and the tray.
 */
export type AgentView = { 
/**
 * Its slot (what calls name it by).
 */
slot: string, 
/**
 * Its pairing (absent: an empty slot).
 */
session: SessionInfo | null, state: ConnectionState, };

/**
 * Everything the UI needs to draw itself after (re)opening: the state, pairing and queue of one
 * agent (`agent`, the one asked for or the first paired), and every agent for the switcher.
 */
export type Status = { state: ConnectionState, session: SessionInfo | null, queued: Array<Queued>, 
/**
 * The slot this status is about.
 */
agent: string, 
/**
 * Every agent, the first slot first.
 */
agents: Array<AgentView>, };

/**
 * A failed call, for the UI: `code` to branch on, `message` to show.
 */
export type CommandError = { code: string, message: string, };

/**
 * A message the person sent: its id, and where it is now (the core decides: sealed and sent
 * when a meeting with the agent is live, queued otherwise).
 */
export type Sent = { id: string, state: MessageState, };

/**
 * A file the window attaches to a message.
 */
export type WireFile = { 
/**
 * Its name.
 */
name: string, 
/**
 * Its MIME type.
 */
mime: string, 
/**
 * Its bytes, base64 (standard alphabet, padded).
 */
data: string, };

/**
 * A pairing link for the dialog: the person confirms before anything happens.
 */
export type PairLink = { code: string, relay: string | null, };
