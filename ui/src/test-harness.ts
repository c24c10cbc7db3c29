// Test harness (built only with `--mode test`): the real app behind a mocked Tauri IPC. The
// browser tests drive it through `window.__clawtray`: set what commands answer, emit core events,
// and read back the intents the UI sent.
import { mockIPC } from "@tauri-apps/api/mocks";
import { emit } from "@tauri-apps/api/event";

import { EVENT } from "./api";
import type { ClientEvent, ConnectionState, Queued, SessionInfo, Status } from "./types";

type Answer = unknown | { reject: unknown };

interface Harness {
  status: Status;
  /** With several agents: the status of each (by slot); `status` is the first's. */
  statusOf: Record<string, Status>;
  answers: Record<string, Answer>;
  calls: { cmd: string; args: unknown; agent?: string }[];
  /** Emit a core event, about agent `agent` (a slot) when given. */
  emit: (e: ClientEvent, agent?: string) => Promise<void>;
  emitMany: (es: ClientEvent[]) => Promise<void>;
}

/** The status of a desktop with one agent (in the first slot). */
function one(state: ConnectionState, session: SessionInfo | null, queued: Queued[] = []): Status {
  return { state, session, queued, agent: "first", agents: [{ slot: "first", session, state }] };
}

const h: Harness = {
  status: one({ state: "unpaired" }, null),
  statusOf: {},
  answers: {},
  calls: [],
  emit: (e, agent) => emit(EVENT, agent === undefined ? e : { ...e, agent }),
  emitMany: async (es) => {
    for (const e of es) await emit(EVENT, e);
  },
};
(window as unknown as { __clawtray: Harness }).__clawtray = h;

let nextId = 0;
mockIPC(
  (cmd, args) => {
    // the agent a call is for is kept apart, so tests compare the call's own arguments
    const { agent, ...rest } = (args ?? {}) as Record<string, unknown>;
    h.calls.push({ cmd, args: rest, ...(agent === undefined ? {} : { agent: agent as string }) });
    if (cmd === "status") {
      const a = (args as { agent?: string } | undefined)?.agent;
      return (a !== undefined && h.statusOf[a]) || h.status;
    }
    const a = h.answers[cmd];
    if (a && typeof a === "object" && "reject" in (a as object)) throw (a as { reject: unknown }).reject;
    if (a !== undefined) return a;
    if (cmd === "send") {
      // the harness plays the core, which knows whether the message went out
      const st = h.status.state;
      const live = st.state === "online" && st.peer === "online";
      return { id: `msg-${++nextId}`, state: live ? "sent" : "queued" };
    }
    return null;
  },
  { shouldMockEvents: true },
);

const params = new URLSearchParams(location.search);
const preset = params.get("preset");
const molty: SessionInfo = { relay_url: "ws://127.0.0.1:8765", session_id: "s", agent_name: "Molty on homelab", paired_at_ms: 0 };
if (preset === "paired") h.status = one({ state: "online", peer: "online" }, molty);
if (preset === "away") h.status = one({ state: "online", peer: "away" }, molty);
if (preset === "refused") {
  h.status = one(
    { state: "refused", reason: "This pairing was ended (unpaired) on one side. (the relay says SESSION_REVOKED)", next_try_at_ms: Date.now() + 300_000 },
    molty,
    [{ id: "q1", text: "kept while refused" }],
  );
}
if (preset === "two-agents") {
  // Molty at home (online) in the first slot, a work box (its agent away) on another relay
  const work: SessionInfo = { relay_url: "wss://relay.example.com", session_id: "w", agent_name: "Work box", paired_at_ms: 0 };
  const online: ConnectionState = { state: "online", peer: "online" };
  const away: ConnectionState = { state: "online", peer: "away" };
  const agents = [
    { slot: "first", session: molty, state: online },
    { slot: "a1b2c3d4", session: work, state: away },
  ];
  h.status = { state: online, session: molty, queued: [], agent: "first", agents };
  h.statusOf = { first: h.status, a1b2c3d4: { state: away, session: work, queued: [{ id: "wq", text: "waiting for the work box" }], agent: "a1b2c3d4", agents } };
}
if (params.get("link")) {
  h.answers.take_pair_link = { code: params.get("link"), relay: params.get("relay") };
}
await import("./main");
