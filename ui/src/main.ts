// Entry: ask the core for its state, show the pairing dialog or the chat, and follow events.
import "./styles.css";
import { api } from "./api";
import { ChatView } from "./chat";
import { pairingView } from "./pairing";
import type { ConnectionState, PairLink, Status } from "./types";

const app = document.getElementById("app")!;
let chat: ChatView | null = null;

function needsPairing(s: ConnectionState): boolean {
  return s.state === "unpaired" || s.state === "needs_repairing" || s.state === "refused" || s.state === "pairing";
}

async function show(link?: PairLink | null): Promise<void> {
  const status: Status = await api.status();
  if (needsPairing(status.state) || link) {
    chat = null;
    const st = status.state;
    const reason = st.state === "needs_repairing" || st.state === "refused" ? st.reason : undefined;
    const refused = st.state === "refused" ? { queued: status.queued.length } : undefined;
    app.replaceChildren(
      pairingView({
        reason,
        refused,
        prefill: link?.code,
        relay: link?.relay ?? undefined,
        fromLink: !!link,
        onPaired: () => void show(),
      }),
    );
    return;
  }
  chat = new ChatView(status.session, () => void show());
  for (const q of status.queued) chat.addUser(q.id, q.text, "queued", q.session ?? null);
  chat.setState(status.state);
  app.replaceChildren(chat.root);
  chat.focus();
  chat.show("");
  void api.sessions();
  void api.approvals();
}

void api.onEvent((e) => {
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
