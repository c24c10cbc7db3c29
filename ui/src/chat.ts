// The chat view. Renders the conversation from events; sends intents through `api`.
//
// Streaming: a delta appends to its bubble's text and schedules one markdown render of that
// bubble for the next animation frame, so thousands of deltas cost at most one render per frame —
// of the blocks the deltas changed (`StreamingMarkdown`), never of the conversation. A reply
// that ends gets one whole render.
import { api, asCommandError } from "./api";
import { ApprovalCards } from "./approvals";
import { el } from "./dom";
import { renderMarkdown, StreamingMarkdown } from "./markdown";
import type { ClientEvent, ConnectionState, MessageState, SessionInfo, ToDesktop } from "./types";

interface Reply {
  bubble: HTMLElement;
  md: StreamingMarkdown;
  text: string;
  lastSeq: number;
  streaming: boolean;
  dirty: boolean;
}

const STATE_LABEL: Record<MessageState, string> = { queued: "Queued", sent: "Sent", delivered: "Delivered", answered: "Delivered" };

export class ChatView {
  readonly root: HTMLElement;
  private list: HTMLElement;
  private banner: HTMLElement;
  private typing: HTMLElement;
  private input: HTMLTextAreaElement;
  private abortButton: HTMLButtonElement;
  private replies = new Map<string, Reply>();
  private userBubbles = new Map<string, HTMLElement>();
  private runOfMessage = new Map<string, string>();
  private frame = 0;
  private state: ConnectionState = { state: "connecting" };
  private gatewayDown = false;
  private approvals = new ApprovalCards();

  constructor(session: SessionInfo | null, private onUnpair: () => void) {
    this.banner = el("div", { class: "banner", role: "status", hidden: "" });
    this.list = el("ol", { class: "messages", "aria-label": "Conversation" });
    this.typing = el("div", { class: "typing", hidden: "", "aria-label": "The agent is typing" }, el("span"), el("span"), el("span"));
    this.input = el("textarea", { id: "message", rows: "1", placeholder: "Message your agent…", "aria-label": "Message" }) as HTMLTextAreaElement;
    this.abortButton = el("button", { type: "button", id: "abort", class: "secondary", hidden: "", title: "Stop the reply (Esc)" }, "Stop") as HTMLButtonElement;
    const send = el("button", { type: "submit", id: "send", class: "primary" }, "Send");
    const form = el("form", { class: "composer" }, this.input, this.abortButton, send);
    const header = el(
      "header",
      { class: "top" },
      el("div", { class: "who" }, el("strong", {}, session?.agent_name ?? "Your agent"), el("span", { class: "dot", id: "presence" })),
      el("button", { type: "button", class: "link", id: "unpair" }, "Unpair"),
    );
    this.root = el("main", { class: "chat" }, header, this.banner, this.list, this.typing, this.approvals.root, form);

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

  private autosize(): void {
    this.input.style.height = "auto";
    this.input.style.height = `${Math.min(this.input.scrollHeight, 200)}px`;
  }

  private scrollToEnd(): void {
    this.list.lastElementChild?.scrollIntoView({ block: "end" });
  }

  private async send(): Promise<void> {
    const text = this.input.value.trim();
    if (!text) return;
    this.input.value = "";
    this.autosize();
    try {
      // the core says where the message is (sealed and sent, or queued): nothing is guessed here
      const sent = await api.send(text);
      this.addUser(sent.id, text, sent.state);
    } catch (e) {
      this.input.value = text;
      this.showBanner(asCommandError(e).message, "error");
    }
  }

  private peerOnline(): boolean {
    return this.state.state === "online" && this.state.peer === "online";
  }

  addUser(id: string, text: string, state: MessageState): void {
    if (this.userBubbles.has(id)) return;
    const mark = el("span", { class: `mark ${state}` }, STATE_LABEL[state]);
    const bubble = el("li", { class: "msg user", "data-id": id }, el("div", { class: "body" }, text), mark);
    this.userBubbles.set(id, bubble);
    this.list.append(bubble);
    this.scrollToEnd();
  }

  private setMark(id: string, state: MessageState): void {
    const mark = this.userBubbles.get(id)?.querySelector(".mark");
    if (!mark) return;
    const order: MessageState[] = ["queued", "sent", "delivered", "answered"];
    const current = order.find((s) => mark.classList.contains(s)) ?? "queued";
    if (order.indexOf(state) <= order.indexOf(current)) return;
    mark.className = `mark ${state}`;
    mark.textContent = STATE_LABEL[state];
  }

  private reply(runId: string): Reply {
    let r = this.replies.get(runId);
    if (!r) {
      const body = el("div", { class: "body md" });
      const bubble = el("li", { class: "msg agent streaming", "data-run": runId }, body);
      r = { bubble, md: new StreamingMarkdown(body), text: "", lastSeq: -1, streaming: true, dirty: false };
      this.replies.set(runId, r);
      this.list.append(bubble);
      this.scrollToEnd();
    }
    return r;
  }

  private schedule(r: Reply): void {
    r.dirty = true;
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      for (const x of this.replies.values()) {
        if (x.dirty) {
          x.dirty = false;
          if (x.streaming) x.md.update(x.text);
          else x.md.finish(x.text);
        }
      }
      this.scrollToEnd();
    });
  }

  private finish(r: Reply, cls?: string): void {
    r.streaming = false;
    this.schedule(r);
    r.bubble.classList.remove("streaming");
    if (cls) r.bubble.classList.add(cls);
    this.updateAbort();
  }

  private updateAbort(): void {
    this.abortButton.hidden = ![...this.replies.values()].some((r) => r.streaming);
  }

  private abortRunning(): void {
    for (const [runId, r] of this.replies) {
      if (r.streaming) void api.abort(runId);
    }
  }

  onChat(m: ToDesktop): void {
    switch (m.type) {
      case "chat_ack": {
        this.runOfMessage.set(m.id, m.run_id);
        this.setMark(m.id, "delivered");
        this.reply(m.run_id);
        this.updateAbort();
        break;
      }
      case "chat_delta": {
        const r = this.reply(m.run_id);
        if (!r.streaming || m.seq <= r.lastSeq) return;
        r.lastSeq = m.seq;
        r.text = m.replace ? m.text : r.text + m.text;
        this.schedule(r);
        this.updateAbort();
        break;
      }
      case "chat_reply": {
        const r = this.reply(m.run_id);
        r.text = m.text;
        this.finish(r); // schedules the whole render of the final text
        for (const [id, run] of this.runOfMessage) if (run === m.run_id) this.setMark(id, "answered");
        break;
      }
      case "chat_aborted": {
        const r = this.reply(m.run_id);
        this.finish(r, "aborted");
        r.bubble.append(el("span", { class: "note" }, "Stopped"));
        break;
      }
      case "chat_error": {
        if (m.run_id) {
          const r = this.reply(m.run_id);
          this.finish(r, "failed");
          r.bubble.append(el("span", { class: "note" }, m.message));
        } else {
          this.list.append(el("li", { class: "msg system" }, m.message));
          this.scrollToEnd();
        }
        break;
      }
      case "chat_typing":
        this.typing.hidden = !m.on;
        break;
      case "history": {
        // What is still on its way stays, in its order, after the history: messages not yet
        // answered (a history the gateway answered before it saw them must not drop them) and
        // replies still streaming. A waiting message stands in for its copy in the history.
        const waiting = new Set<Element>([...this.userBubbles.values()].filter((li) => li.isConnected && !li.querySelector(".mark.answered")));
        for (const r of this.replies.values()) if (r.streaming) waiting.add(r.bubble);
        const kept = [...this.list.children].filter((li) => waiting.has(li));
        const standIns = [...waiting].filter((li) => li.classList.contains("user")).map((li) => li.querySelector(".body")?.textContent ?? "");
        this.list.replaceChildren();
        for (const [run, r] of this.replies) if (!r.streaming) this.replies.delete(run);
        for (const h of m.messages) {
          const standIn = h.role === "user" ? standIns.indexOf(h.text) : -1;
          if (standIn >= 0) {
            standIns.splice(standIn, 1);
            continue;
          }
          const body = el("div", { class: "body md" });
          const li = el("li", { class: `msg ${h.role === "user" ? "user" : h.role === "assistant" ? "agent" : "system"}` }, body);
          if (h.role === "user") body.textContent = h.text;
          else renderMarkdown(body, h.text);
          this.list.append(li);
        }
        this.list.append(...kept);
        this.scrollToEnd();
        break;
      }
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
        this.gatewayDown = m.gateway === "disconnected";
        if (this.gatewayDown) {
          for (const r of this.replies.values()) if (r.streaming) this.finish(r);
          this.typing.hidden = true;
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
        this.setMark(e.id, e.state);
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
