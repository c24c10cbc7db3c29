//! Several agents on one desktop. Each pairing lives in its own **slot**: its own keyring entry
//! (by session id), its own metadata file (`pairing.json`) and its own outbox — so pairing a
//! second agent leaves the first as it is, and unpairing one touches nothing of the others. The
//! first slot is where a desktop with one agent always kept its pairing (the platform data and
//! config dirs themselves), so existing installs need no move; further slots live under
//! `agents/<id>/` in both dirs.
//!
//! [`Slots`] is the layout (which slots exist, where each keeps its files) and choosing an agent
//! by name, without starting anything — what `clawtray-cli --agent NAME` needs. [`Agents`] runs
//! one [`RelayClient`] per slot (the tray host), pairs new agents into new slots and removes a
//! slot when its agent is unpaired. One desktop's agents may sit on different relays.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::client::{ClientConfig, RelayClient};
use crate::error::{ClientError, PairError};
use crate::session_store::{SessionInfo, SessionStore};
use crate::state::{ClientEvent, ConnectionState, PeerPresence};

/// The slot of the first pairing (the platform dirs themselves).
pub const FIRST_SLOT: &str = "first";

/// Where slots keep their files.
#[derive(Debug, Clone)]
pub struct Slots {
    data_root: PathBuf,
    config_root: PathBuf,
}

/// Where one slot keeps its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotDirs {
    /// Its outbox.
    pub data: PathBuf,
    /// Its pairing's metadata.
    pub config: PathBuf,
}

/// Whether `id` can name a slot (a directory): 1 to 32 of `[a-z0-9-]`.
#[must_use]
pub fn valid_slot_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 32
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl Slots {
    /// Slots under the platform data dir and config dir.
    #[must_use]
    pub fn new(data_root: PathBuf, config_root: PathBuf) -> Self {
        Self {
            data_root,
            config_root,
        }
    }

    /// Where slot `id` keeps its files.
    #[must_use]
    pub fn dirs(&self, id: &str) -> SlotDirs {
        if id == FIRST_SLOT {
            SlotDirs {
                data: self.data_root.clone(),
                config: self.config_root.clone(),
            }
        } else {
            SlotDirs {
                data: self.data_root.join("agents").join(id),
                config: self.config_root.join("agents").join(id),
            }
        }
    }

    /// The slots that exist: the first one always, then the others in a stable order.
    #[must_use]
    pub fn ids(&self) -> Vec<String> {
        let mut more: Vec<String> = std::fs::read_dir(self.config_root.join("agents"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter(|id| valid_slot_id(id) && id != FIRST_SLOT)
            .collect();
        more.sort();
        std::iter::once(FIRST_SLOT.to_owned()).chain(more).collect()
    }

    /// A new slot's id (its dirs are made when its pairing is saved).
    #[must_use]
    pub fn new_id(&self) -> String {
        let mut b = [0u8; 4];
        let _ = clawtray_proto::secret::fill_random(&mut b);
        format!("{:08x}", u32::from_le_bytes(b))
    }

    /// Remove slot `id`'s dirs (never the first slot's: they are the platform dirs).
    pub fn remove(&self, id: &str) {
        if id != FIRST_SLOT && valid_slot_id(id) {
            let d = self.dirs(id);
            let _ = std::fs::remove_dir_all(d.data);
            let _ = std::fs::remove_dir_all(d.config);
        }
    }
}

/// The agent a command is for: `wanted` (an agent's name, or a slot id) among the paired ones
/// `(slot, info)`; with no name, the only one. Each failure is a sentence that says what to do.
pub fn choose<'a>(
    paired: &'a [(String, SessionInfo)],
    wanted: Option<&str>,
) -> Result<&'a (String, SessionInfo), String> {
    let names = || {
        paired
            .iter()
            .map(|(_, i)| i.agent_name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match wanted {
        None => match paired {
            [] => Err("not paired with an agent: pair with the code the agent shows".into()),
            [one] => Ok(one),
            _ => Err(format!(
                "paired with several agents ({}): say which with --agent NAME",
                names()
            )),
        },
        Some(w) => {
            if let Some(by_slot) = paired.iter().find(|(s, _)| s == w) {
                return Ok(by_slot);
            }
            let named: Vec<_> = paired
                .iter()
                .filter(|(_, i)| i.agent_name.eq_ignore_ascii_case(w))
                .collect();
            match named.as_slice() {
                [one] => Ok(one),
                [] if paired.is_empty() => {
                    Err("not paired with an agent: pair with the code the agent shows".into())
                }
                [] => Err(format!("no agent named “{w}” (paired: {})", names())),
                _ => Err(format!(
                    "several agents are named “{w}”: name one by its slot ({})",
                    named
                        .iter()
                        .map(|(s, _)| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
        }
    }
}

/// One slot as it is now: for the window's switcher and the tray.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ts_rs::TS)]
pub struct AgentView {
    /// Its slot (what calls name it by).
    pub slot: String,
    /// Its pairing (absent: an empty slot).
    pub session: Option<SessionInfo>,
    pub state: ConnectionState,
}

/// Makes the session store of a slot from its config dir.
pub type StoreFor = Arc<dyn Fn(&Path) -> Arc<dyn SessionStore> + Send + Sync>;

/// One agent this desktop is paired with (or the empty first slot).
#[derive(Clone)]
pub struct Agent {
    /// Its slot.
    pub slot: String,
    /// Its relay client (shared: the host's local channel serves it too).
    pub client: Arc<RelayClient>,
}

/// The running agents: one [`RelayClient`] per slot.
pub struct Agents {
    slots: Slots,
    base: ClientConfig,
    store_for: StoreFor,
    list: Vec<Agent>,
    /// Every client's events, marked with its slot.
    events: broadcast::Sender<(String, ClientEvent)>,
}

/// One state for several agents (the tray's icon): unpaired when none is paired; online with
/// the agent there when every paired one is; otherwise the state of the first that is not
/// (refused or waiting before connecting, before an agent that is away).
#[must_use]
pub fn combined_state(states: &[ConnectionState]) -> ConnectionState {
    let paired: Vec<&ConnectionState> = states
        .iter()
        .filter(|s| !matches!(s, ConnectionState::Unpaired))
        .collect();
    let rank = |s: &ConnectionState| match s {
        ConnectionState::Refused { .. } | ConnectionState::NeedsRepairing { .. } => 0,
        ConnectionState::WaitingToRetry { .. } => 1,
        ConnectionState::Connecting | ConnectionState::Handshaking | ConnectionState::Pairing => 2,
        ConnectionState::Online {
            peer: PeerPresence::Away,
        } => 3,
        _ => 4,
    };
    paired
        .iter()
        .min_by_key(|s| rank(s))
        .map_or(ConnectionState::Unpaired, |s| (*s).clone())
}

impl Agents {
    /// Start a client for every slot. `base`'s `data_dir` is the data root; each slot's client
    /// gets its own.
    pub fn open(base: ClientConfig, config_root: PathBuf, store_for: StoreFor) -> Self {
        let slots = Slots::new(base.data_dir.clone(), config_root);
        let (events, _) = broadcast::channel(4096);
        let mut me = Self {
            slots,
            base,
            store_for,
            list: Vec::new(),
            events,
        };
        for id in me.slots.ids() {
            let agent = me.start(&id);
            me.list.push(agent);
        }
        me
    }

    fn start(&self, slot: &str) -> Agent {
        let dirs = self.slots.dirs(slot);
        let mut config = self.base.clone();
        config.data_dir = dirs.data;
        let client = Arc::new(RelayClient::start(config, (self.store_for)(&dirs.config)));
        // its events, marked with its slot, into the one stream (ends with the client)
        let (mut rx, tx, tag) = (client.subscribe(), self.events.clone(), slot.to_owned());
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(ev) => {
                        let _ = tx.send((tag.clone(), ev));
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        Agent {
            slot: slot.to_owned(),
            client,
        }
    }

    /// Every agent's events, each with its slot.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<(String, ClientEvent)> {
        self.events.subscribe()
    }

    /// The stream [`Agents::subscribe`] reads (to subscribe without holding the book).
    #[must_use]
    pub fn events(&self) -> broadcast::Sender<(String, ClientEvent)> {
        self.events.clone()
    }

    /// Every slot now: its pairing and its connection state, the first slot first.
    pub async fn views(&self) -> Vec<AgentView> {
        let mut out = Vec::with_capacity(self.list.len());
        for a in &self.list {
            out.push(AgentView {
                slot: a.slot.clone(),
                session: a.client.session().await,
                state: a.client.state().borrow().clone(),
            });
        }
        out
    }

    /// The agent a call names (`None`: the first paired one, else the first slot).
    #[must_use]
    pub fn resolve(&self, slot: Option<&str>) -> Option<&Agent> {
        match slot {
            Some(s) => self.get(s),
            None => {
                for a in &self.list {
                    if !matches!(*a.client.state().borrow(), ConnectionState::Unpaired) {
                        return Some(a);
                    }
                }
                self.list.first()
            }
        }
    }

    /// The slot a new pairing goes to: one that holds no pairing, or a new one (`true`: new —
    /// hand it back to [`Agents::pairing_done`] either way). Pairing runs without the book.
    pub async fn pairing_slot(&self) -> (Agent, bool) {
        for a in &self.list {
            if a.client.session().await.is_none() {
                return (a.clone(), false);
            }
        }
        (self.start(&self.slots.new_id()), true)
    }

    /// A pairing in a slot from [`Agents::pairing_slot`] ended: keep a new slot that paired,
    /// drop one that did not.
    pub async fn pairing_done(&mut self, agent: Agent, fresh: bool, paired: bool) {
        if !fresh {
            return;
        }
        if paired {
            self.list.push(agent);
        } else {
            agent.client.stop().await;
            self.slots.remove(&agent.slot);
        }
    }

    /// Every slot, the first one first.
    #[must_use]
    pub fn list(&self) -> &[Agent] {
        &self.list
    }

    /// Slot `slot`'s agent.
    #[must_use]
    pub fn get(&self, slot: &str) -> Option<&Agent> {
        self.list.iter().find(|a| a.slot == slot)
    }

    /// The paired agents: (slot, pairing).
    pub async fn paired(&self) -> Vec<(String, SessionInfo)> {
        self.views()
            .await
            .into_iter()
            .filter_map(|v| Some((v.slot, v.session?)))
            .collect()
    }

    /// Pair with another agent: in a slot that holds no pairing, or a new one. The agents
    /// already paired are left as they are. Returns the slot.
    pub async fn pair(
        &mut self,
        code: &str,
        relay: &str,
    ) -> Result<(String, SessionInfo), PairError> {
        let (agent, fresh) = self.pairing_slot().await;
        let slot = agent.slot.clone();
        let r = agent.client.pair(code, relay).await;
        self.pairing_done(agent, fresh, r.is_ok()).await;
        r.map(|info| (slot, info))
    }

    /// Unpair slot `slot`'s agent (telling it and the relay); its slot goes (the first one
    /// stays, empty). The others are not touched.
    pub async fn unpair(&mut self, slot: &str) -> Result<(), ClientError> {
        let Some(pos) = self.list.iter().position(|a| a.slot == slot) else {
            return Err(ClientError::NotPaired);
        };
        self.list[pos].client.unpair().await?;
        if slot != FIRST_SLOT {
            let agent = self.list.remove(pos);
            agent.client.stop().await;
            self.slots.remove(slot);
        }
        Ok(())
    }

    /// Stop every client (and wait for those no one else holds).
    pub async fn shutdown(self) {
        for a in self.list {
            match Arc::try_unwrap(a.client) {
                Ok(c) => c.shutdown().await,
                Err(shared) => shared.stop().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str) -> SessionInfo {
        SessionInfo {
            relay_url: "ws://127.0.0.1:1".into(),
            session_id: format!("s-{name}"),
            agent_name: name.into(),
            paired_at_ms: 0,
        }
    }

    #[test]
    fn the_combined_state_is_the_one_that_needs_attention() {
        use ConnectionState as S;
        let online = S::Online {
            peer: PeerPresence::Online,
        };
        let away = S::Online {
            peer: PeerPresence::Away,
        };
        assert_eq!(combined_state(&[]), S::Unpaired);
        assert_eq!(combined_state(&[S::Unpaired]), S::Unpaired);
        assert_eq!(combined_state(&[online.clone(), S::Unpaired]), online);
        assert_eq!(combined_state(&[online.clone(), away.clone()]), away);
        assert_eq!(
            combined_state(&[away.clone(), S::Connecting, online]),
            S::Connecting
        );
    }

    #[test]
    fn choosing_an_agent_by_name_or_slot_with_a_sentence_otherwise() {
        let none: Vec<(String, SessionInfo)> = Vec::new();
        assert!(choose(&none, None).unwrap_err().contains("not paired"));
        let one = vec![("first".to_owned(), info("Home"))];
        assert_eq!(choose(&one, None).unwrap().1.agent_name, "Home");
        assert_eq!(choose(&one, Some("home")).unwrap().0, "first");
        let two = vec![
            ("first".to_owned(), info("Home")),
            ("a1b2c3d4".to_owned(), info("Work")),
        ];
        assert_eq!(
            choose(&two, None).unwrap_err(),
            "paired with several agents (Home, Work): say which with --agent NAME"
        );
        assert_eq!(choose(&two, Some("WORK")).unwrap().0, "a1b2c3d4");
        assert_eq!(choose(&two, Some("a1b2c3d4")).unwrap().1.agent_name, "Work");
        assert_eq!(
            choose(&two, Some("Lab")).unwrap_err(),
            "no agent named “Lab” (paired: Home, Work)"
        );
        let twins = vec![
            ("first".to_owned(), info("Box")),
            ("b".to_owned(), info("box")),
        ];
        assert!(choose(&twins, Some("box"))
            .unwrap_err()
            .contains("name one by its slot (first, b)"));
    }

    #[test]
    fn slots_keep_the_first_pairing_where_it_always_was_and_others_apart() {
        let d = tempfile::tempdir().unwrap();
        let slots = Slots::new(d.path().join("data"), d.path().join("config"));
        assert_eq!(slots.ids(), vec!["first"]);
        assert_eq!(slots.dirs("first").config, d.path().join("config"));
        let id = slots.new_id();
        assert!(valid_slot_id(&id));
        let dirs = slots.dirs(&id);
        assert_eq!(dirs.config, d.path().join("config/agents").join(&id));
        std::fs::create_dir_all(&dirs.config).unwrap();
        std::fs::create_dir_all(&dirs.data).unwrap();
        std::fs::create_dir_all(d.path().join("config/agents/NOT valid")).unwrap();
        assert_eq!(slots.ids(), vec!["first".to_owned(), id.clone()]);
        slots.remove(&id);
        assert!(!dirs.config.exists() && !dirs.data.exists());
        slots.remove("first");
        assert!(
            d.path().join("config").exists(),
            "the first slot's dirs stay"
        );
        assert!(!valid_slot_id("../x"));
    }
}
