// The only place the UI talks to the Rust shell: commands (intents) and one event stream.
import { invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";

import type { ApprovalDecision, ClientEvent, CommandError, PairLink, Sent, SessionInfo, Status, WireFile } from "./types";

export const EVENT = "clawtray://event";

/** A core event, with the agent (slot) it is about. */
export type AgentEvent = ClientEvent & { agent?: string };

/** The agent (slot) this window shows: every call is for it (undefined: the first paired one). */
let agent: string | undefined;
export function useAgent(slot: string | undefined): void {
  agent = slot;
}
export function shownAgent(): string | undefined {
  return agent;
}
/** `args` for the shown agent. */
const forAgent = (args: Record<string, unknown> = {}) => (agent === undefined ? args : { ...args, agent });
export const PAIR_LINK_EVENT = "clawtray://pair-link";

export const api = {
  status: () => invoke<Status>("status", forAgent()),
  /** Pair: `again` pairs the shown agent again (replacing a pairing the relay refuses); otherwise
   * another agent, in a slot of its own (the answer names it). */
  pair: (code: string, relay: string, again = false) =>
    invoke<SessionInfo & { slot?: string }>("pair", again ? forAgent({ code, relay }) : { code, relay }),
  /** Send to session `session` (undefined: the agent's default one), with files (base64). */
  send: (text: string, session?: string, files: WireFile[] = []) =>
    invoke<Sent>("send", forAgent({ text, ...(session === undefined ? {} : { session }), ...(files.length ? { files } : {}) })),
  abort: (runId: string, session?: string) => invoke<void>("abort", forAgent(session === undefined ? { runId } : { runId, session })),
  /** The latest `limit` messages of a session, or (with `before`) the page before one shown. */
  history: (limit: number, before?: string, session?: string) =>
    invoke<void>("history", forAgent({ limit, ...(before === undefined ? {} : { before }), ...(session === undefined ? {} : { session }) })),
  /** Ask for the agent's sessions (they come back as a `sessions` event). */
  sessions: () => invoke<void>("sessions", forAgent()),
  unpair: () => invoke<void>("unpair", forAgent()),
  reconnect: () => invoke<void>("reconnect", forAgent()),
  /** Answer an exec approval. */
  decide: (id: string, decision: ApprovalDecision) => invoke<void>("decide", forAgent({ id, decision })),
  /** Ask which approvals wait (they come back as an `approvals` event). */
  approvals: () => invoke<void>("approvals", forAgent()),
  /** A `clawtray://pair?…` link the tray host handed over, once (null when none). */
  takePairLink: () => invoke<PairLink | null>("take_pair_link"),
  onPairLink: (f: (l: PairLink) => void): Promise<UnlistenFn> => listen<PairLink>(PAIR_LINK_EVENT, (e) => f(e.payload)),
  onEvent: (f: (e: AgentEvent) => void): Promise<UnlistenFn> => listen<AgentEvent>(EVENT, (e) => f(e.payload)),
};

/** A command failure as `{code, message}`, whatever shape it arrived in. */
export function asCommandError(e: unknown): CommandError {
  if (e && typeof e === "object" && "message" in e) {
    const o = e as { code?: unknown; message?: unknown };
    return { code: typeof o.code === "string" ? o.code : "UNKNOWN", message: String(o.message) };
  }
  return { code: "UNKNOWN", message: String(e) };
}
