// The pairing dialog: one field for the code (checked as you type), the relay (folded away), and
// every failure as a sentence with what to do next.
import { api, asCommandError } from "./api";
import { checkCode } from "./code";
import { el } from "./dom";

export const DEFAULT_RELAY = "ws://127.0.0.1:8765";

export function pairingView(opts: {
  reason?: string;
  /** The relay refuses the stored pairing, which is kept (with this many queued messages). */
  refused?: { queued: number };
  prefill?: string;
  relay?: string;
  /** Filled in from a `clawtray://pair` link: say so, and say plainly when its relay is not the default. */
  fromLink?: boolean;
  /** Pair the shown agent again (in its place) rather than adding one. */
  again?: boolean;
  /** Adding another agent to those paired (the title says so). */
  another?: boolean;
  /** The slot of the agent paired. */
  onPaired: (slot?: string) => void;
  /** Back to the chat without pairing (offered when an agent is paired already). */
  onCancel?: () => void;
}): HTMLElement {
  const input = el("input", {
    id: "code",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "73514062-K4Q7-2MXD",
    "aria-describedby": "code-hint",
    "aria-label": "Pairing code",
  }) as HTMLInputElement;
  input.value = opts.prefill ?? "";
  const hint = el("p", { id: "code-hint", class: "hint" });
  const relay = el("input", { id: "relay", autocomplete: "off", spellcheck: "false", "aria-label": "Relay address" }) as HTMLInputElement;
  relay.value = opts.relay ?? DEFAULT_RELAY;
  const button = el("button", { type: "submit", class: "primary", id: "pair" }, "Pair") as HTMLButtonElement;
  const error = el("p", { class: "error", role: "alert", id: "pair-error" });
  const retry = el("button", { type: "button", class: "link", hidden: "" }, "Try again") as HTMLButtonElement;
  const cancel = el("button", { type: "button", class: "secondary", id: "pair-cancel" }, "Cancel") as HTMLButtonElement;
  cancel.addEventListener("click", () => opts.onCancel?.());

  const refresh = () => {
    const c = checkCode(input.value);
    hint.textContent = c.ok ? `Ready: ${c.normalized}` : c.hint;
    hint.classList.toggle("bad", !c.ok && c.complete);
    button.disabled = !c.ok;
  };
  input.addEventListener("input", () => {
    error.textContent = "";
    retry.hidden = true;
    refresh();
  });

  if (opts.fromLink && opts.relay && opts.relay !== DEFAULT_RELAY) {
    // the relay is part of what the person confirms: show it, not folded away
    setTimeout(() => form.querySelector("details")?.setAttribute("open", ""), 0);
  }
  const form = el(
    "form",
    { class: "card pairing", novalidate: "" },
    el("h1", {}, opts.another ? "Pair another agent" : "Pair with your agent"),
    opts.reason ? el("p", { class: "notice", id: "repair-reason" }, opts.reason) : "",
    opts.refused ? refusedActions(opts.refused.queued) : "",
    opts.fromLink ? linkNotice(opts.relay) : "",
    el("p", {}, "On the machine running OpenClaw, run ", el("code", {}, "clawtray-agent pair"), " and type the code it shows. It works once, for 10 minutes."),
    el("label", { for: "code" }, "Pairing code"),
    input,
    hint,
    el("details", {}, el("summary", {}, "Relay"), el("label", { for: "relay" }, "Relay address"), relay),
    error,
    el("div", { class: "actions" }, retry, ...(opts.onCancel ? [cancel] : []), button),
  );

  const submit = async () => {
    const c = checkCode(input.value);
    if (!c.ok) return;
    button.disabled = true;
    button.textContent = "Pairing…";
    error.textContent = "";
    retry.hidden = true;
    try {
      const paired = await api.pair(c.normalized, relay.value.trim(), opts.again ?? false);
      opts.onPaired(paired?.slot);
    } catch (e) {
      const { code, message } = asCommandError(e);
      error.textContent = sentence(code, message);
      retry.hidden = code !== "RELAY_UNREACHABLE";
      if (code === "WRONG_CODE" || code === "EXPIRED_CODE" || code === "UNKNOWN_CODE") {
        input.select();
      }
    } finally {
      button.textContent = "Pair";
      refresh();
    }
  };
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    void submit();
  });
  retry.addEventListener("click", () => void submit());
  refresh();
  setTimeout(() => input.focus(), 0);
  return form;
}

/** A link filled the dialog in: nothing happens until the person presses Pair. */
function linkNotice(relay: string | undefined): HTMLElement {
  const other =
    relay && relay !== DEFAULT_RELAY
      ? ` It uses the relay ${relay}, not the default one — pair only if you expected that.`
      : "";
  return el("p", { class: "notice", id: "link-notice" }, `Filled in from a pairing link. Check the code, then press Pair.${other}`);
}

/** What a person can do with a pairing the relay refuses: nothing is deleted until they say so. */
function refusedActions(queued: number): HTMLElement {
  const again = el("button", { type: "button", class: "link", id: "refused-retry" }, "Try the old pairing again") as HTMLButtonElement;
  const forget = el("button", { type: "button", class: "link", id: "refused-forget" }, "Remove it") as HTMLButtonElement;
  again.addEventListener("click", () => void api.reconnect());
  forget.addEventListener("click", () => {
    const lose = queued > 0 ? ` and ${queued} unsent message${queued === 1 ? "" : "s"}` : "";
    if (confirm(`Remove the old pairing${lose} from this computer?`)) void api.unpair();
  });
  const kept =
    queued > 0
      ? `Your pairing and ${queued} unsent message${queued === 1 ? " are" : "s are"} kept until you pair again or remove it.`
      : "Your pairing is kept until you pair again or remove it.";
  return el("div", { class: "refused", id: "refused" }, el("p", {}, kept), el("div", { class: "actions" }, again, forget));
}

/** The Rust side already speaks in sentences; add what to do where the code says more. */
function sentence(code: string, message: string): string {
  const m = message.charAt(0).toUpperCase() + message.slice(1);
  switch (code) {
    case "RELAY_UNREACHABLE":
      return `${m}. Check your connection, then try again.`;
    case "ALREADY_PAIRED":
      return `${m}.`;
    default:
      return m.endsWith(".") ? m : `${m}.`;
  }
}
