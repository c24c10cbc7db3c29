// Exec approvals in the chat: one card per command the agent asks to run, docked above the
// composer so a conversation reload never drops one. The command shows exactly as it will run
// (text in <pre>, never markdown), with its working directory, host, agent and session and when
// it expires; its buttons are the answers the gateway allows. A card keeps its place once
// answered and says how and by whom (here, another desktop, the gateway's own UI) or that it
// expired. Keyboard: the buttons are in the tab order (Shift+Tab from the composer reaches the
// newest card); on a focused card, A answers "Allow once" and D "Deny".
import { api, asCommandError } from "./api";
import { el } from "./dom";
import type { ApprovalDecision, ApprovalRequest } from "./types";

const LABEL: Record<ApprovalDecision, string> = { "allow-once": "Allow once", "allow-always": "Always", deny: "Deny" };
const DONE: Record<ApprovalDecision, string> = { "allow-once": "Allowed once", "allow-always": "Always allowed", deny: "Denied" };
/** Answered cards kept on screen. */
const KEEP_ANSWERED = 3;

function clock(ms: number): string {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export class ApprovalCards {
  readonly root: HTMLElement;
  private cards = new Map<string, HTMLElement>();

  constructor() {
    this.root = el("section", { class: "approvals", "aria-label": "Commands waiting for your approval" });
  }

  /** A command waits: show its card (once). */
  add(a: ApprovalRequest): void {
    if (this.cards.has(a.id)) return;
    const meta = [a.host ? `on ${a.host}` : "", a.agent_id ? `agent ${a.agent_id}` : "", a.session_key ? `session ${a.session_key}` : ""].filter(Boolean).join(" · ");
    const buttons = el("div", { class: "answers" });
    for (const d of a.allowed) {
      const b = el("button", { type: "button", class: d === "deny" ? "secondary" : "primary", "data-decision": d }, LABEL[d]);
      b.addEventListener("click", () => void this.decide(a.id, d));
      buttons.append(b);
    }
    const code = el("code");
    code.textContent = a.command; // text, never markup
    const card = el(
      "article",
      { class: "approval pending", "data-id": a.id, tabindex: "0", "aria-label": `Your agent asks to run: ${a.command}` },
      el("header", {}, el("strong", {}, "Your agent asks to run a command"), el("span", { class: "expires" }, `expires ${clock(a.expires_at_ms)}`)),
      el("pre", { class: "command" }, code),
      ...(a.cwd ? [el("p", { class: "where" }, "in ", el("code", {}, a.cwd))] : []),
      ...(meta ? [el("p", { class: "meta" }, meta)] : []),
      ...(a.warning ? [el("p", { class: "warning" }, a.warning)] : []),
      buttons,
      el("p", { class: "outcome", role: "status" }),
    );
    card.addEventListener("keydown", (e) => {
      if (e.target !== card || e.altKey || e.ctrlKey || e.metaKey) return;
      const key = e.key.toLowerCase();
      const d: ApprovalDecision | null = key === "a" ? "allow-once" : key === "d" ? "deny" : null;
      if (d && a.allowed.includes(d)) {
        e.preventDefault();
        void this.decide(a.id, d);
      }
    });
    this.cards.set(a.id, card);
    this.root.append(card);
    card.scrollIntoView({ block: "nearest" });
  }

  /** The approval no longer waits: say how it ended. */
  resolve(id: string, decision: ApprovalDecision | undefined, by: string | undefined): void {
    const card = this.cards.get(id);
    if (!card || !card.classList.contains("pending")) return;
    card.classList.replace("pending", "answered");
    card.classList.add(decision ? decision : by === "expiry" ? "expired" : "gone");
    card.querySelector(".answers")?.remove();
    // no decision: expired (the agent says `by: "expiry"`), or it ended while the agent was away
    const how = decision ? DONE[decision] : by === "expiry" ? "Expired — the command did not run" : "No longer waiting (answered elsewhere, or expired, while your agent was away)";
    this.outcome(card, by && decision ? `${how} by ${by}` : how);
    this.prune();
  }

  /** This desktop's answer was not taken: say why (the card stays as it is). */
  refused(id: string, message: string): void {
    const card = this.cards.get(id);
    if (!card) return;
    this.outcome(card, message, true);
    this.setBusy(card, false);
  }

  /** The agent's list of what waits: add the new, end the ones that no longer wait. */
  replace(pending: ApprovalRequest[]): void {
    const ids = new Set(pending.map((a) => a.id));
    for (const [id, card] of this.cards) {
      if (card.classList.contains("pending") && !ids.has(id)) this.resolve(id, undefined, undefined);
    }
    for (const a of pending) {
      const card = this.cards.get(a.id);
      if (card?.classList.contains("pending") && card.querySelector(".answers button:disabled")) {
        // it still waits: an answer given before may have been lost with a restarted agent, so
        // the person can give it again (the agent refuses a second copy with a sentence)
        this.setBusy(card, false);
        this.outcome(card, "Still waiting for an answer.");
      }
      this.add(a);
    }
  }

  /** How many wait. */
  waiting(): number {
    return [...this.cards.values()].filter((c) => c.classList.contains("pending")).length;
  }

  private async decide(id: string, decision: ApprovalDecision): Promise<void> {
    const card = this.cards.get(id);
    if (!card || !card.classList.contains("pending")) return;
    this.setBusy(card, true);
    this.outcome(card, `${LABEL[decision]}: sending…`);
    try {
      await api.decide(id, decision);
    } catch (e) {
      this.outcome(card, asCommandError(e).message, true);
      this.setBusy(card, false);
    }
  }

  private setBusy(card: HTMLElement, busy: boolean): void {
    for (const b of card.querySelectorAll<HTMLButtonElement>(".answers button")) b.disabled = busy;
  }

  private outcome(card: HTMLElement, text: string, error = false): void {
    const o = card.querySelector(".outcome");
    if (!o) return;
    o.textContent = text;
    o.classList.toggle("error", error);
  }

  private prune(): void {
    const answered = [...this.cards.entries()].filter(([, c]) => !c.classList.contains("pending"));
    for (const [id, card] of answered.slice(0, Math.max(0, answered.length - KEEP_ANSWERED))) {
      card.remove();
      this.cards.delete(id);
    }
  }
}
