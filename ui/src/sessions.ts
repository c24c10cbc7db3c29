// The session picker in the chat's header: the agent's sessions (conversations), most recent
// first, the one shown selected, and a button that starts a new one. A session where something
// happened while another was shown is marked "•", one with a reply being written "…". A new
// session exists on this desktop until its first message; the gateway makes it then.
import { el } from "./dom";
import type { SessionSummary } from "./types";

interface Row {
  key: string;
  label: string;
  unread: boolean;
  busy: boolean;
}

/** A new session's key: readable and unique enough (the gateway makes it on the first message). */
function newKey(now = new Date()): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `chat-${now.getFullYear()}${p(now.getMonth() + 1)}${p(now.getDate())}-${p(now.getHours())}${p(now.getMinutes())}${p(now.getSeconds())}`;
}

export class SessionPicker {
  readonly root: HTMLElement;
  private selectEl: HTMLSelectElement;
  /** In the order shown; "" is the agent's default session. */
  private rows: Row[] = [{ key: "", label: "Main", unread: false, busy: false }];
  private current = "";

  constructor(private onPick: (key: string) => void) {
    this.selectEl = el("select", { id: "session", "aria-label": "Conversation" }) as HTMLSelectElement;
    const add = el("button", { type: "button", class: "link", id: "new-session", title: "Start a new conversation" }, "New");
    this.root = el("div", { class: "sessions" }, this.selectEl, add);
    this.selectEl.addEventListener("change", () => this.pick(this.selectEl.value));
    add.addEventListener("click", () => {
      const key = newKey();
      this.ensure(key, "New conversation");
      this.pick(key);
    });
    this.render();
  }

  private pick(key: string): void {
    this.current = key;
    this.render();
    this.onPick(key);
  }

  /** Show `key` as selected (`notify`: also tell the chat, as a person's pick would). */
  select(key: string, notify: boolean): void {
    this.ensure(key);
    if (notify) this.pick(key);
    else {
      this.current = key;
      this.render();
    }
  }

  /** A session this desktop knows of, listed (at the top) if the agent's list does not have it. */
  ensure(key: string, label?: string): void {
    if (this.rows.some((r) => r.key === key)) return;
    this.rows.splice(1, 0, { key, label: label ?? key, unread: false, busy: false });
    this.render();
  }

  /** The agent's list: it replaces the rows, keeping marks and sessions not yet on the gateway. */
  replace(list: SessionSummary[]): void {
    const old = new Map(this.rows.map((r) => [r.key, r]));
    const rows: Row[] = list.map((s) => {
      const key = s.default ? "" : s.key;
      // the gateway's title, else the name this desktop gave it, else its key
      const label = s.title ?? (s.default ? "Main" : (old.get(key)?.label ?? s.key));
      return { key, label, unread: old.get(key)?.unread ?? false, busy: s.running ?? false };
    });
    if (!rows.some((r) => r.key === "")) rows.unshift({ key: "", label: "Main", unread: false, busy: false });
    // the default session first, then the gateway's order (most recent first)
    rows.sort((a, b) => (a.key === "" ? -1 : b.key === "" ? 1 : 0));
    for (const r of this.rows) if (!rows.some((x) => x.key === r.key)) rows.splice(1, 0, r);
    this.rows = rows;
    this.render();
  }

  /** Mark a session: something new there, a reply being written there. */
  mark(key: string, m: { unread: boolean; busy: boolean }): void {
    const r = this.rows.find((x) => x.key === key);
    if (!r) {
      this.ensure(key);
      return this.mark(key, m);
    }
    if (r.unread === m.unread && r.busy === m.busy) return;
    r.unread = m.unread;
    r.busy = m.busy;
    this.render();
  }

  private render(): void {
    this.selectEl.replaceChildren(
      ...this.rows.map((r) => {
        const o = el("option", { value: r.key }, `${r.unread && r.key !== this.current ? "• " : ""}${r.label}${r.busy ? " …" : ""}`) as HTMLOptionElement;
        o.selected = r.key === this.current;
        return o;
      }),
    );
    this.root.hidden = false;
  }
}
