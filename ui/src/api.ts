// The only place the UI talks to the Rust shell: commands (intents) and one event stream.
import { invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";

import type { ApprovalDecision, ClientEvent, CommandError, PairLink, Sent, SessionInfo, Status, WireFile } from "./types";

export const EVENT = "clawtray://event";
export const PAIR_LINK_EVENT = "clawtray://pair-link";

export const api = {
  status: () => invoke<Status>("status"),
  pair: (code: string, relay: string) => invoke<SessionInfo>("pair", { code, relay }),
  /** Send to session `session` (undefined: the agent's default one), with files (base64). */
  send: (text: string, session?: string, files: WireFile[] = []) =>
    invoke<Sent>("send", { text, ...(session === undefined ? {} : { session }), ...(files.length ? { files } : {}) }),
  abort: (runId: string, session?: string) => invoke<void>("abort", session === undefined ? { runId } : { runId, session }),
  /** The latest `limit` messages of a session, or (with `before`) the page before one shown. */
  history: (limit: number, before?: string, session?: string) =>
    invoke<void>("history", { limit, ...(before === undefined ? {} : { before }), ...(session === undefined ? {} : { session }) }),
  /** Ask for the agent's sessions (they come back as a `sessions` event). */
  sessions: () => invoke<void>("sessions"),
  unpair: () => invoke<void>("unpair"),
  reconnect: () => invoke<void>("reconnect"),
  /** Answer an exec approval. */
  decide: (id: string, decision: ApprovalDecision) => invoke<void>("decide", { id, decision }),
  /** Ask which approvals wait (they come back as an `approvals` event). */
  approvals: () => invoke<void>("approvals"),
  /** A `clawtray://pair?…` link the tray host handed over, once (null when none). */
  takePairLink: () => invoke<PairLink | null>("take_pair_link"),
  onPairLink: (f: (l: PairLink) => void): Promise<UnlistenFn> => listen<PairLink>(PAIR_LINK_EVENT, (e) => f(e.payload)),
  onEvent: (f: (e: ClientEvent) => void): Promise<UnlistenFn> => listen<ClientEvent>(EVENT, (e) => f(e.payload)),
};

/** A command failure as `{code, message}`, whatever shape it arrived in. */
export function asCommandError(e: unknown): CommandError {
  if (e && typeof e === "object" && "message" in e) {
    const o = e as { code?: unknown; message?: unknown };
    return { code: typeof o.code === "string" ? o.code : "UNKNOWN", message: String(o.message) };
  }
  return { code: "UNKNOWN", message: String(e) };
}
