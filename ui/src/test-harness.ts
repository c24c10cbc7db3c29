// Test harness (built only with `--mode test`): the real app behind a mocked Tauri IPC. The
// browser tests drive it through `window.__clawtray`: set what commands answer, emit core events,
// and read back the intents the UI sent.
import { mockIPC } from "@tauri-apps/api/mocks";
import { emit } from "@tauri-apps/api/event";

import { EVENT } from "./api";
import type { ClientEvent, Status } from "./types";

type Answer = unknown | { reject: unknown };

interface Harness {
  status: Status;
  answers: Record<string, Answer>;
  calls: { cmd: string; args: unknown }[];
  emit: (e: ClientEvent) => Promise<void>;
  emitMany: (es: ClientEvent[]) => Promise<void>;
}

const h: Harness = {
  status: { state: { state: "unpaired" }, session: null, queued: [] },
  answers: {},
  calls: [],
  emit: (e) => emit(EVENT, e),
  emitMany: async (es) => {
    for (const e of es) await emit(EVENT, e);
  },
};
(window as unknown as { __clawtray: Harness }).__clawtray = h;

let nextId = 0;
mockIPC(
  (cmd, args) => {
    h.calls.push({ cmd, args });
    if (cmd === "status") return h.status;
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
if (preset === "paired") {
  h.status = {
    state: { state: "online", peer: "online" },
    session: { relay_url: "ws://127.0.0.1:8765", session_id: "s", agent_name: "Molty on homelab", paired_at_ms: 0 },
    queued: [],
  };
}
if (preset === "away") {
  h.status = {
    state: { state: "online", peer: "away" },
    session: { relay_url: "ws://127.0.0.1:8765", session_id: "s", agent_name: "Molty on homelab", paired_at_ms: 0 },
    queued: [],
  };
}
if (preset === "refused") {
  h.status = {
    state: { state: "refused", reason: "This pairing was ended (unpaired) on one side. (the relay says SESSION_REVOKED)", next_try_at_ms: Date.now() + 300_000 },
    session: { relay_url: "ws://127.0.0.1:8765", session_id: "s", agent_name: "Molty on homelab", paired_at_ms: 0 },
    queued: [{ id: "q1", text: "kept while refused" }],
  };
}
if (params.get("link")) {
  h.answers.take_pair_link = { code: params.get("link"), relay: params.get("relay") };
}
await import("./main");
