//! What one node puts in another node's inbox: an [`Outbound`] item for one of its connections,
//! as `[kind: u8][connection id: u64 big-endian][payload]`. Binary frames travel as they are
//! (sealed by the ends; the relay never opens them); everything else is short text.

use std::sync::Arc;

use tokio_tungstenite::tungstenite::Bytes;

use clawtray_proto::control::{ControlFrame, ErrorCode};

use crate::peer::{Loc, Outbound, Target};

const BINARY: u8 = 1;
const CONTROL: u8 = 2;
const LINKED: u8 = 3;
const ENTER: u8 = 4;
const NOTE: u8 = 5;
const CLOSE: u8 = 6;
const HEADER: usize = 9;

fn with_header(kind: u8, conn: u64, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER + payload.len());
    v.push(kind);
    v.extend_from_slice(&conn.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn target_loc(t: &Target, me: &Arc<str>) -> Loc {
    match t {
        Target::Local(h) => Loc {
            node: me.clone(),
            conn: h.conn_id,
        },
        Target::Remote(l) => l.clone(),
    }
}

/// Encode `item` for connection `conn` of another node; `me` is this node (a local partner is
/// named by its location). `None` for items that never cross nodes.
#[must_use]
pub fn encode(conn: u64, item: &Outbound, me: &Arc<str>) -> Option<Vec<u8>> {
    Some(match item {
        Outbound::Binary(b) => with_header(BINARY, conn, b),
        Outbound::Control(c) => with_header(CONTROL, conn, c.to_json().as_bytes()),
        Outbound::Linked { partner } => {
            with_header(LINKED, conn, target_loc(partner, me).encode().as_bytes())
        }
        Outbound::EnterSession { session, peer } => {
            let peer = peer.as_ref().map(Loc::encode).unwrap_or_default();
            with_header(ENTER, conn, format!("{session}\n{peer}").as_bytes())
        }
        Outbound::PeerNote { frame, from } => {
            let from = from.as_ref().map(Loc::encode).unwrap_or_default();
            with_header(
                NOTE,
                conn,
                format!("{from}\n{}", frame.to_json()).as_bytes(),
            )
        }
        Outbound::CloseWith(code) => with_header(CLOSE, conn, code.as_str().as_bytes()),
        Outbound::NodeGone(_) => return None,
    })
}

/// Decode an inbox entry: the local connection it is for and what to hand it. `None` for
/// anything malformed (counted and dropped by the caller: the ends resend what matters).
#[must_use]
pub fn decode(bytes: &[u8]) -> Option<(u64, Outbound)> {
    let (&kind, rest) = bytes.split_first()?;
    let conn = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
    let payload = rest.get(8..)?;
    let text = || std::str::from_utf8(payload).ok();
    let item = match kind {
        BINARY => Outbound::Binary(Bytes::copy_from_slice(payload)),
        CONTROL => Outbound::Control(ControlFrame::from_json(text()?).ok()?),
        LINKED => Outbound::Linked {
            partner: Target::Remote(Loc::parse(text()?)?),
        },
        ENTER => {
            let (session, peer) = text()?.split_once('\n')?;
            Outbound::EnterSession {
                session: session.to_owned(),
                peer: Loc::parse(peer),
            }
        }
        NOTE => {
            let (from, frame) = text()?.split_once('\n')?;
            Outbound::PeerNote {
                frame: ControlFrame::from_json(frame).ok()?,
                from: Loc::parse(from),
            }
        }
        CLOSE => Outbound::CloseWith(
            serde_json::from_value::<ErrorCode>(serde_json::Value::String(text()?.to_owned()))
                .ok()
                .filter(|c| *c != ErrorCode::Unknown)?,
        ),
        _ => return None,
    };
    Some((conn, item))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Arc<str> {
        "node-a".into()
    }

    fn round_trip(item: Outbound) -> (u64, Outbound) {
        decode(&encode(42, &item, &me()).unwrap()).unwrap()
    }

    #[test]
    fn every_item_that_crosses_nodes_round_trips() {
        let frame = vec![0u8, 1, 2, 255, b'\n', b'|'];
        match round_trip(Outbound::Binary(Bytes::from(frame.clone()))) {
            (42, Outbound::Binary(b)) => assert_eq!(&b[..], &frame[..]),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            round_trip(Outbound::Control(ControlFrame::Linked)),
            (42, Outbound::Control(ControlFrame::Linked))
        ));
        let (h, _mb) = crate::peer::channel(7, 1, 1);
        match round_trip(Outbound::Linked {
            partner: Target::Local(h),
        }) {
            (
                42,
                Outbound::Linked {
                    partner: Target::Remote(l),
                },
            ) => assert_eq!(
                l,
                Loc {
                    node: me(),
                    conn: 7
                }
            ),
            other => panic!("{other:?}"),
        }
        let peer = Loc {
            node: "node-b".into(),
            conn: 9,
        };
        match round_trip(Outbound::EnterSession {
            session: "S".into(),
            peer: Some(peer.clone()),
        }) {
            (42, Outbound::EnterSession { session, peer: p }) => {
                assert_eq!((session.as_str(), p), ("S", Some(peer.clone())));
            }
            other => panic!("{other:?}"),
        }
        match round_trip(Outbound::PeerNote {
            frame: ControlFrame::PeerRestarted,
            from: None,
        }) {
            (42, Outbound::PeerNote { frame, from }) => {
                assert_eq!((frame, from), (ControlFrame::PeerRestarted, None));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            round_trip(Outbound::CloseWith(ErrorCode::Replaced)),
            (42, Outbound::CloseWith(ErrorCode::Replaced))
        ));
        assert!(encode(1, &Outbound::NodeGone(me()), &me()).is_none());
    }

    #[test]
    fn junk_is_refused() {
        for junk in [
            &b""[..],
            b"\x01short",
            b"\x09\0\0\0\0\0\0\0\x01x",
            b"\x06\0\0\0\0\0\0\0\x01NOPE!",
        ] {
            assert!(decode(junk).is_none(), "{junk:?}");
        }
    }
}
