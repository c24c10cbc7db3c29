// The agent switcher in the chat's header, when this desktop is paired with several agents (or
// to pair another): each agent by name with its state (● there, ○ away, ◌ connecting, ⚠ needs
// attention), "•" where something happened while another was shown, and "Pair another agent…".
// Picking one shows its chat; the core keeps every agent's connection either way.
import { el } from "./dom";
import type { AgentView, ConnectionState } from "./types";

/** The option value that asks to pair another agent. */
export const PAIR_ANOTHER = "__pair_another__";

/** A state as a mark and a word. */
export function stateMark(s: ConnectionState): { mark: string; word: string } {
  switch (s.state) {
    case "online":
      return s.peer === "online" ? { mark: "●", word: "online" } : { mark: "○", word: "agent offline" };
    case "connecting":
    case "handshaking":
    case "pairing":
      return { mark: "◌", word: "connecting" };
    case "waiting_to_retry":
      return { mark: "○", word: "relay unreachable" };
    case "refused":
    case "needs_repairing":
      return { mark: "⚠", word: "needs pairing again" };
    default:
      return { mark: "○", word: "not paired" };
  }
}

interface Row {
  slot: string;
  name: string;
  state: ConnectionState;
  unread: boolean;
}

export class AgentSwitcher {
  readonly root: HTMLElement;
  private selectEl: HTMLSelectElement;
  private rows: Row[];

  constructor(
    agents: AgentView[],
    private current: string,
    private onPick: (slot: string) => void,
    private onPairAnother: () => void,
  ) {
    this.rows = agents.filter((a) => a.session).map((a) => ({ slot: a.slot, name: a.session?.agent_name ?? a.slot, state: a.state, unread: false }));
    this.selectEl = el("select", { id: "agent", "aria-label": "Agent" }) as HTMLSelectElement;
    this.root = el("div", { class: "agents" }, this.selectEl);
    this.selectEl.addEventListener("change", () => {
      const v = this.selectEl.value;
      if (v === PAIR_ANOTHER) {
        this.selectEl.value = this.current;
        this.onPairAnother();
      } else if (v !== this.current) {
        this.onPick(v);
      }
    });
    this.render();
  }

  /** Agent `slot`'s state changed. */
  setState(slot: string, state: ConnectionState): void {
    const r = this.rows.find((x) => x.slot === slot);
    if (!r) return;
    r.state = state;
    this.render();
  }

  /** Something happened at agent `slot` while another is shown. */
  markUnread(slot: string): void {
    const r = this.rows.find((x) => x.slot === slot);
    if (!r || slot === this.current || r.unread) return;
    r.unread = true;
    this.render();
  }

  private render(): void {
    const opts = this.rows.map((r) => {
      const { mark, word } = stateMark(r.state);
      const o = el("option", { value: r.slot, title: `${r.name}: ${word}` }, `${r.unread ? "• " : ""}${mark} ${r.name}`) as HTMLOptionElement;
      o.selected = r.slot === this.current;
      return o;
    });
    this.selectEl.replaceChildren(...opts, el("option", { value: PAIR_ANOTHER }, "Pair another agent…"));
    this.selectEl.value = this.current;
  }
}
