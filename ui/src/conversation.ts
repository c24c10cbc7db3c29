// One conversation (one of the agent's sessions): its list of bubbles, its streaming replies and
// its history pages. The chat view keeps one per session and shows one at a time; a hidden one
// keeps following its events, so switching back shows its reply as far as it got.
//
// Streaming: a delta appends to its bubble's text and schedules one markdown render of that
// bubble for the next animation frame, so thousands of deltas cost at most one render per frame —
// of the blocks the deltas changed (`StreamingMarkdown`), never of the conversation. A reply
// that ends gets one whole render.
//
// History: the latest page replaces what is shown (keeping what is still on its way); scrolling
// to the top asks for the page before it (`older` cursor), which goes above without moving what
// the reader looks at. Messages carry ids, so a page that overlaps one shown adds nothing twice.
import { size, type ShownFile } from "./attachments";
import { el } from "./dom";
import { fileIcon, imageIcon } from "./icons";
import { renderMarkdown, StreamingMarkdown } from "./markdown";
import type { HistoryMessage, MessageState, ToDesktop } from "./types";

interface Reply {
  bubble: HTMLElement;
  md: StreamingMarkdown;
  text: string;
  lastSeq: number;
  streaming: boolean;
  dirty: boolean;
}

const STATE_LABEL: Record<MessageState, string> = { queued: "Queued", sent: "Sent", delivered: "Delivered", answered: "Delivered" };
/** Scrolled this close to the top, the page before is asked for. */
const NEAR_TOP_PX = 80;

/** The files a message carries: images sent from here as thumbnails (the file itself), the
 * rest — and every file of the history, whose bytes stay with the gateway — as chips. */
function filesOf(files: ShownFile[]): HTMLElement {
  return el(
    "div",
    { class: "files" },
    ...files.map((f) =>
      f.thumb
        ? el("img", { class: "thumb", src: f.thumb, alt: f.name, title: f.size === undefined ? f.name : `${f.name} (${size(f.size)})` })
        : el("span", { class: "file-chip" }, f.image ? imageIcon() : fileIcon(), f.size === undefined ? f.name : `${f.name} · ${size(f.size)}`),
    ),
  );
}

export class Conversation {
  readonly list: HTMLOListElement;
  typing = false;
  /** Something happened here while another conversation was shown. */
  unread = false;
  private replies = new Map<string, Reply>();
  private userBubbles = new Map<string, HTMLElement>();
  private runOfMessage = new Map<string, string>();
  private frame = 0;
  /** Ids of history messages shown. */
  private shownIds = new Set<string>();
  /** The cursor of the page before the oldest shown; null: the first message is shown;
   * undefined: no page loaded yet. */
  private older: string | null | undefined = undefined;
  private loadingOlder: string | null = null;
  private topMarker: HTMLElement;

  constructor(
    /** The session key (null: the agent's default session). */
    readonly session: string | null,
    private onChange: () => void,
    private askOlder: (before: string) => void,
  ) {
    this.list = el("ol", { class: "messages", "aria-label": "Conversation" }) as HTMLOListElement;
    this.topMarker = el("li", { class: "beginning", hidden: "" }, "The beginning of this conversation");
    this.list.addEventListener("scroll", () => this.maybeLoadOlder(), { passive: true });
  }

  /** Whether the latest page was asked for already. */
  get loaded(): boolean {
    return this.older !== undefined;
  }

  private scrollToEnd(): void {
    this.list.lastElementChild?.scrollIntoView({ block: "end" });
  }

  /** Ask for the page before the oldest shown when the reader is near the top. */
  maybeLoadOlder(): void {
    if (!this.older || this.loadingOlder !== null || !this.list.isConnected) return;
    if (this.list.scrollTop > NEAR_TOP_PX) return;
    this.loadingOlder = this.older;
    this.askOlder(this.older);
  }

  addUser(id: string, text: string, state: MessageState, files: ShownFile[] = []): void {
    if (this.userBubbles.has(id)) return;
    const mark = el("span", { class: `mark ${state}` }, STATE_LABEL[state]);
    const bubble = el("li", { class: "msg user", "data-id": id });
    if (files.length) bubble.append(filesOf(files));
    if (text) bubble.append(el("div", { class: "body" }, text));
    bubble.append(mark);
    this.userBubbles.set(id, bubble);
    this.list.append(bubble);
    this.scrollToEnd();
  }

  setMark(id: string, state: MessageState): void {
    const mark = this.userBubbles.get(id)?.querySelector(".mark");
    if (!mark) return;
    const order: MessageState[] = ["queued", "sent", "delivered", "answered"];
    const current = order.find((s) => mark.classList.contains(s)) ?? "queued";
    if (order.indexOf(state) <= order.indexOf(current)) return;
    mark.className = `mark ${state}`;
    mark.textContent = STATE_LABEL[state];
  }

  hasMessage(id: string): boolean {
    return this.userBubbles.has(id);
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
  }

  /** The runs still streaming (what Stop stops). */
  running(): string[] {
    return [...this.replies].filter(([, r]) => r.streaming).map(([run]) => run);
  }

  /** The gateway went away: no reply here can go on. */
  stopAll(): void {
    for (const r of this.replies.values()) if (r.streaming) this.finish(r);
    this.typing = false;
  }

  onChat(m: ToDesktop): void {
    switch (m.type) {
      case "chat_ack": {
        this.runOfMessage.set(m.id, m.run_id);
        this.setMark(m.id, "delivered");
        this.reply(m.run_id);
        break;
      }
      case "chat_delta": {
        const r = this.reply(m.run_id);
        if (!r.streaming || m.seq <= r.lastSeq) return;
        r.lastSeq = m.seq;
        r.text = m.replace ? m.text : r.text + m.text;
        this.schedule(r);
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
        this.typing = m.on;
        break;
      case "history":
        if (m.before) this.prependPage(m.messages, m.before, m.older ?? null);
        else this.replaceWithLatest(m.messages, m.older ?? null);
        break;
      default:
        return;
    }
    this.onChange();
  }

  private bubbleOf(h: HistoryMessage): HTMLElement {
    const body = el("div", { class: "body md" });
    const li = el("li", { class: `msg ${h.role === "user" ? "user" : h.role === "assistant" ? "agent" : "system"}` }, body);
    if (h.id) li.dataset.historyId = h.id;
    if (h.role === "user") body.textContent = h.text;
    else renderMarkdown(body, h.text);
    if (h.files?.length)
      li.prepend(filesOf(h.files.map((f) => ({ name: f.name, ...(f.size === undefined ? {} : { size: f.size }), image: (f.mime ?? "").startsWith("image/") }))));
    return li;
  }

  /** The latest page: it replaces what is shown. What is still on its way stays, in its order,
   * after it: messages not yet answered (a history the gateway answered before it saw them must
   * not drop them) and replies still streaming. A waiting message stands in for its copy in the
   * history. */
  private replaceWithLatest(messages: HistoryMessage[], older: string | null): void {
    const waiting = new Set<Element>([...this.userBubbles.values()].filter((li) => li.isConnected && !li.querySelector(".mark.answered")));
    for (const r of this.replies.values()) if (r.streaming) waiting.add(r.bubble);
    const kept = [...this.list.children].filter((li) => waiting.has(li));
    const standIns = [...waiting].filter((li) => li.classList.contains("user")).map((li) => li.querySelector(".body")?.textContent ?? "");
    this.list.replaceChildren(this.topMarker);
    this.shownIds.clear();
    for (const [run, r] of this.replies) if (!r.streaming) this.replies.delete(run);
    for (const h of messages) {
      const standIn = h.role === "user" ? standIns.indexOf(h.text) : -1;
      if (standIn >= 0) {
        standIns.splice(standIn, 1);
        continue;
      }
      if (h.id) this.shownIds.add(h.id);
      this.list.append(this.bubbleOf(h));
    }
    this.list.append(...kept);
    this.setOlder(older);
    this.loadingOlder = null;
    this.scrollToEnd();
    // a short conversation does not fill the window: no scroll will ever ask for more
    requestAnimationFrame(() => this.maybeLoadOlder());
  }

  /** An older page: above what is shown, the reader's view held still. */
  private prependPage(messages: HistoryMessage[], before: string, older: string | null): void {
    if (before !== this.loadingOlder) return; // an answer to a question no longer asked
    this.loadingOlder = null;
    const fresh = messages.filter((h) => !h.id || !this.shownIds.has(h.id));
    const height = this.list.scrollHeight;
    const top = this.list.scrollTop;
    const nodes = fresh.map((h) => {
      if (h.id) this.shownIds.add(h.id);
      return this.bubbleOf(h);
    });
    this.topMarker.after(...nodes);
    this.list.scrollTop = top + (this.list.scrollHeight - height);
    this.setOlder(older);
    requestAnimationFrame(() => this.maybeLoadOlder());
  }

  private setOlder(older: string | null): void {
    this.older = older;
    this.topMarker.hidden = older !== null;
    this.list.dataset.complete = older === null ? "true" : "false";
  }
}
