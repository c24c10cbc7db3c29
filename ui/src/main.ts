// Entry: ask the core for its state, show the pairing dialog or the chat of the agent shown (with
// the agent switcher when there are several), and follow events — the shown agent's go to the
// chat, the others' to the switcher.
import "./styles.css";
import { AgentSwitcher } from "./agents";
import { api, shownAgent, useAgent } from "./api";
import { ChatView } from "./chat";
import { pairingView } from "./pairing";
import type { ConnectionState, PairLink, Status } from "./types";

const app = document.getElementById("app")!;
let chat: ChatView | null = null;
let switcher: AgentSwitcher | null = null;
/** The pairing dialog is up for another agent (the shown one's events do not close it). */
let pairingAnother = false;

function needsPairing(s: ConnectionState): boolean {
  return s.state === "unpaired" || s.state === "needs_repairing" || s.state === "refused" || s.state === "pairing";
}

async function show(link?: PairLink | null, another = false): Promise<void> {
  const status: Status = await api.status();
  useAgent(status.agent || undefined);
  const paired = (status.agents ?? []).filter((a) => a.session);
  const st = status.state;
  if (st.state === "unpaired" && paired.length > 0 && !link && !another) {
    // the agent shown was unpaired: show one that is paired
    useAgent(paired[0].slot);
    return show();
  }
  if (needsPairing(st) || link || another) {
    chat = null;
    switcher = null;
    // a refused or lost pairing is paired again in its place; otherwise another agent is added
    const again = !another && (st.state === "needs_repairing" || st.state === "refused");
    pairingAnother = another || (!!link && paired.length > 0 && !again);
    const reason = again ? st.reason : undefined;
    const refused = st.state === "refused" && again ? { queued: status.queued.length } : undefined;
    app.replaceChildren(
      pairingView({
        reason,
        refused,
        prefill: link?.code,
        relay: link?.relay ?? undefined,
        fromLink: !!link,
        again,
        another: pairingAnother,
        onPaired: (slot) => {
          pairingAnother = false;
          if (slot) useAgent(slot);
          void show();
        },
        onCancel:
          paired.length > 0
            ? () => {
                pairingAnother = false;
                void show();
              }
            : undefined,
      }),
    );
    return;
  }
  pairingAnother = false;
  chat = new ChatView(status.session, () => {
    useAgent(undefined);
    void show();
  });
  switcher =
    paired.length > 1
      ? new AgentSwitcher(
          status.agents,
          status.agent,
          (slot) => {
            useAgent(slot);
            void show();
          },
          () => void show(null, true),
        )
      : null;
  chat.setAgents(switcher?.root ?? null, () => void show(null, true));
  for (const q of status.queued) chat.addUser(q.id, q.text, "queued", q.session ?? null);
  chat.setState(status.state);
  app.replaceChildren(chat.root);
  chat.focus();
  chat.show("");
  void api.sessions();
  void api.approvals();
}

void api.onEvent((e) => {
  // every agent's state shows in the switcher, the one shown too
  if (e.agent !== undefined && e.kind === "state") switcher?.setState(e.agent, e.state);
  if (e.agent !== undefined && e.agent !== shownAgent()) {
    // another agent's news: an unread mark in the switcher
    if (e.kind === "chat" && e.message.type !== "agent_status") switcher?.markUnread(e.agent);
    return;
  }
  if (pairingAnother) return;
  if (e.kind === "state" && needsPairing(e.state) !== (chat === null)) {
    void show();
    return;
  }
  chat?.onEvent(e);
});
// a pairing link opened while the app runs (or the one that started it) fills in the dialog;
// the person still presses Pair
void api.onPairLink((l) => void show(l));
void api.takePairLink().then((l) => show(l), () => show());
