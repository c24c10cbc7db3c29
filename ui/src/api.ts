// The only place the UI talks to the Rust shell: commands (intents) and one event stream.
import { invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";

import type { ClientEvent, CommandError, SessionInfo, Status } from "./types";

export const EVENT = "clawtray://event";

export const api = {
  status: () => invoke<Status>("status"),
  pair: (code: string, relay: string) => invoke<SessionInfo>("pair", { code, relay }),
  send: (text: string) => invoke<string>("send", { text }),
  abort: (runId: string) => invoke<void>("abort", { runId }),
  history: (limit: number) => invoke<void>("history", { limit }),
  unpair: () => invoke<void>("unpair"),
  reconnect: () => invoke<void>("reconnect"),
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
