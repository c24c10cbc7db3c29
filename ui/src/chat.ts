// The chat view: the header (agent, session picker), the banner, the conversation shown, the
// typing indicator, the approval cards and the composer (with the files attached to it: the
// paperclip, a drop on the window, or a pasted image). One `Conversation` per session of the
// agent; events go to the one they belong to, and the picker says where something happened.
// Renders from events; sends intents through `api`.
import { api, asCommandError } from "./api";
import { ApprovalCards } from "./approvals";
import { Attachments } from "./attachments";
import { Conversation } from "./conversation";
import { el } from "./dom";
import { paperclip } from "./icons";
import { SessionPicker } from "./sessions";
import type { ClientEvent, ConnectionState, MessageState, SessionInfo, ToDesktop } from "./types";

/** How many messages a page of history holds. */
export const HISTORY_PAGE = 50;

export class ChatView {
  readonly root: HTMLElement;
  private header: HTMLElement;
  private banner: HTMLElement;
  private typing: HTMLElement;
  private input: HTMLTextAreaElement;
  private abortButton: HTMLButtonElement;
  private state: ConnectionState = { state: "connecting" };
  /** A send (files being read and handed over) is under way. */
  private sending = false;
  private gatewayDown = false;
  private approvals = new ApprovalCards();
  private attachments = new Attachments(() => this.root?.classList.toggle("has-files", this.attachments.count > 0));
  private picker: SessionPicker;
  /** Conversations by session key ("" for the agent's default session). */
  private convs = new Map<string, Conversation>();
  private shown: Conversation;

  constructor(session: SessionInfo | null, private onUnpair: () => void) {
    this.banner = el("div", { class: "banner", role: "status", hidden: "" });
    this.typing = el("div", { class: "typing", hidden: "", "aria-label": "The agent is typing" }, el("span"), el("span"), el("span"));
    this.input = el("textarea", { id: "message", rows: "1", placeholder: "Message your agent…", "aria-label": "Message" }) as HTMLTextAreaElement;
    this.abortButton = el("button", { type: "button", id: "abort", class: "secondary", hidden: "", title: "Stop the reply (Esc)" }, "Stop") as HTMLButtonElement;
    const send = el("button", { type: "submit", id: "send", class: "primary" }, "Send");
    const picker = el("input", { type: "file", id: "file-input", multiple: "", hidden: "" }) as HTMLInputElement;
    const attach = el("button", { type: "button", id: "attach", class: "secondary icon", title: "Attach files (or drop them here, or paste an image)", "aria-label": "Attach files" }, paperclip());
    const form = el("form", { class: "composer" }, this.input, attach, picker, this.abortButton, send);
    this.picker = new SessionPicker((key) => this.show(key));
    const header = el(
      "header",
      { class: "top" },
      el("div", { class: "who" }, el("strong", {}, session?.agent_name ?? "Your agent"), el("span", { class: "dot", id: "presence" })),
      this.picker.root,
      el("span", { class: "agent-actions" }, el("button", { type: "button", class: "link", id: "add-agent", title: "Pair another agent" }, "Add agent"), el("button", { type: "button", class: "link", id: "unpair" }, "Unpair")),
    );
    this.header = header;
    this.shown = this.conv(null);
    this.root = el(
      "main",
      { class: "chat" },
      header,
      this.banner,
      this.shown.list,
      this.typing,
      this.approvals.root,
      this.attachments.root,
      this.attachments.error,
      form,
    );

    attach.addEventListener("click", () => picker.click());
    picker.addEventListener("change", () => {
      if (picker.files) this.attachments.add(picker.files);
      picker.value = "";
      this.input.focus();
    });
    this.root.addEventListener("dragover", (e) => {
      if (!e.dataTransfer?.types.includes("Files")) return;
      e.preventDefault();
      this.root.classList.add("dropping");
    });
    this.root.addEventListener("dragleave", (e) => {
      if (e.target === this.root || !this.root.contains(e.relatedTarget as Node | null)) this.root.classList.remove("dropping");
    });
    this.root.addEventListener("drop", (e) => {
      this.root.classList.remove("dropping");
      if (!e.dataTransfer?.files.length) return;
      e.preventDefault();
      this.attachments.add(e.dataTransfer.files);
    });
    this.input.addEventListener("paste", (e) => {
      const files = e.clipboardData?.files;
      if (!files?.length) return; // text pastes as text
      e.preventDefault();
      this.attachments.add(files);
    });

    form.addEventListener("submit", (e) => {
      e.preventDefault();
      void this.send();
    });
    this.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        void this.send();
      }
    });
    this.input.addEventListener("input", () => this.autosize());
    this.root.addEventListener("keydown", (e) => {
      if (e.key === "Escape") this.abortRunning();
    });
    this.abortButton.addEventListener("click", () => this.abortRunning());
    header.querySelector("#unpair")?.addEventListener("click", () => void api.unpair().then(this.onUnpair));
  }

  focus(): void {
    this.input.focus();
  }

  /** With several agents, `switcher` stands where the agent's name is; "Add agent" pairs another. */
  setAgents(switcher: HTMLElement | null, addAgent: () => void): void {
    const add = this.header.querySelector("#add-agent");
    if (switcher) {
      // the switcher's last entry pairs another agent
      this.header.querySelector(".who")?.replaceWith(switcher);
      add?.remove();
    }
    add?.addEventListener("click", addAgent);
  }

  /** The conversation of `session` (null: the default one), made on first use. */
  private conv(session: string | null): Conversation {
    const key = session ?? "";
    let c = this.convs.get(key);
    if (!c) {
      const made: Conversation = new Conversation(
        session,
        () => this.changed(made),
        (before) => void api.history(HISTORY_PAGE, before, session ?? undefined),
      );
      c = made;
      this.convs.set(key, c);
    }
    return c;
  }

  /** Show session `key` ("" for the default one), loading its latest page the first time. */
  show(key: string): void {
    const next = this.conv(key === "" ? null : key);
    if (next !== this.shown) {
      this.shown.list.replaceWith(next.list);
      this.shown = next;
      next.unread = false;
      this.picker.select(key, false);
    }
    if (!next.loaded) void api.history(HISTORY_PAGE, undefined, next.session ?? undefined);
    next.list.lastElementChild?.scrollIntoView({ block: "end" });
    this.changed(next);
    this.input.focus();
  }

  /** Something changed in `c`: update what shows it. */
  private changed(c: Conversation): void {
    if (c === this.shown) {
      this.typing.hidden = !c.typing;
      this.abortButton.hidden = c.running().length === 0;
    } else {
      c.unread = true;
    }
    this.picker.mark(c.session ?? "", { unread: c.unread, busy: c.typing || c.running().length > 0 });
  }

  private autosize(): void {
    this.input.style.height = "auto";
    this.input.style.height = `${Math.min(this.input.scrollHeight, 200)}px`;
  }

  private async send(): Promise<void> {
    const text = this.input.value.trim();
    if (!text && this.attachments.count === 0) return;
    if (this.sending) return;
    const conv = this.shown;
    this.sending = true;
    this.input.value = "";
    this.autosize();
    try {
      const { wire, shown } = await this.attachments.read();
      // the core says where the message is (sealed and sent, or queued): nothing is guessed here
      const sent = await api.send(text, conv.session ?? undefined, wire);
      this.attachments.clear();
      conv.addUser(sent.id, text, sent.state, shown);
      this.picker.ensure(conv.session ?? "");
    } catch (e) {
      this.input.value = text;
      const err = asCommandError(e);
      // a refused file is said next to the files (they stay attached); anything else above
      if (err.code === "FILES_REFUSED") this.attachments.say(err.message);
      else this.showBanner(err.message, "error");
    } finally {
      this.sending = false;
    }
  }

  private peerOnline(): boolean {
    return this.state.state === "online" && this.state.peer === "online";
  }

  /** A message waiting in the outbox (shown at start), in its session. */
  addUser(id: string, text: string, state: MessageState, session: string | null = null): void {
    this.conv(session).addUser(id, text, state);
    if (session !== null) this.picker.ensure(session);
  }

  private abortRunning(): void {
    const session = this.shown.session ?? undefined;
    for (const runId of this.shown.running()) void api.abort(runId, session);
  }

  onChat(m: ToDesktop): void {
    switch (m.type) {
      case "chat_ack":
      case "chat_delta":
      case "chat_reply":
      case "chat_aborted":
      case "chat_error":
      case "chat_typing":
      case "history":
        this.conv(m.session ?? null).onChat(m);
        break;
      case "sessions":
        this.picker.replace(m.sessions);
        break;
      case "approval_requested":
        this.approvals.add(m.approval);
        break;
      case "approval_resolved":
        this.approvals.resolve(m.id, m.decision, m.by);
        break;
      case "approval_refused":
        this.approvals.refused(m.id, m.message);
        break;
      case "approvals":
        this.approvals.replace(m.pending);
        break;
      case "agent_status":
        if (m.files) this.attachments.limits = m.files;
        this.gatewayDown = m.gateway === "disconnected";
        if (this.gatewayDown) {
          for (const c of this.convs.values()) {
            c.stopAll();
            this.changed(c);
          }
        }
        this.renderBanner();
        break;
    }
  }

  onEvent(e: ClientEvent): void {
    switch (e.kind) {
      case "chat":
        this.onChat(e.message);
        break;
      case "message":
        for (const c of this.convs.values()) if (c.hasMessage(e.id)) c.setMark(e.id, e.state);
        break;
      case "state":
        this.setState(e.state);
        break;
      case "notice":
        this.showBanner(e.message, "warn");
        break;
    }
  }

  setState(s: ConnectionState): void {
    this.state = s;
    const dot = this.root.querySelector("#presence");
    if (dot) dot.className = `dot ${this.peerOnline() ? "on" : "off"}`;
    this.renderBanner();
  }

  private showBanner(text: string, level: "warn" | "error" | "info", action?: HTMLElement): void {
    this.banner.hidden = false;
    this.banner.className = `banner ${level}`;
    this.banner.replaceChildren(el("span", {}, text), ...(action ? [action] : []));
  }

  private renderBanner(): void {
    const reconnect = () => {
      const b = el("button", { type: "button", class: "link", id: "reconnect" }, "Reconnect now");
      b.addEventListener("click", () => void api.reconnect());
      return b;
    };
    const s = this.state;
    if (s.state === "waiting_to_retry") {
      const secs = Math.max(0, Math.round((s.next_try_at_ms - Date.now()) / 1000));
      this.showBanner(`Can't reach the relay (${s.last_error}). Retrying in ${secs} s; messages are kept.`, "warn", reconnect());
    } else if (s.state === "connecting" || s.state === "handshaking") {
      this.showBanner("Connecting…", "info");
    } else if (s.state === "online" && s.peer === "away") {
      this.showBanner("Your agent is offline. Messages wait here and are delivered when it is back.", "warn");
    } else if (this.gatewayDown) {
      this.showBanner("Your agent can't reach its OpenClaw gateway right now. Messages are kept.", "warn", reconnect());
    } else {
      this.banner.hidden = true;
    }
  }
}
