//! The TypeScript declarations of every payload the web view receives or sends, generated from
//! the Rust types with `ts-rs` into `ui/src/generated/types.ts` — so the shapes are written once.
//! A test fails when the committed file is stale; `CLAWTRAY_WRITE_UI_TYPES=1 cargo test -p
//! clawtray ui_types` rewrites it.

#[cfg(test)]
mod tests {
    use std::path::Path;

    use ts_rs::{Config, TS};

    use clawtray_client::ipc::wire::{AgentView, CallError, Queued, Status, WireFile};
    use clawtray_client::session_store::SessionInfo;
    use clawtray_client::state::{ClientEvent, ConnectionState, MessageState, PeerPresence, Sent};
    use clawtray_proto::chat::{
        ApprovalDecision, ApprovalRequest, GatewayStatus, HistoryMessage, SessionSummary, ToDesktop,
    };
    use clawtray_proto::files::{FileLimits, FileSummary};

    use crate::events::PairLink;

    fn declaration<T: TS + 'static + ?Sized>(cfg: &Config) -> String {
        let docs = T::docs().unwrap_or_default();
        format!("{docs}export {}\n", T::decl(cfg))
    }

    fn generated() -> String {
        let cfg = Config::default();
        let mut out = String::from(
            "// Generated from the Rust types by src-tauri/src/ui_types.rs (ts-rs). Do not edit:\n\
             // run `CLAWTRAY_WRITE_UI_TYPES=1 cargo test -p clawtray ui_types` after changing them.\n\n",
        );
        for decl in [
            declaration::<PeerPresence>(&cfg),
            declaration::<ConnectionState>(&cfg),
            declaration::<MessageState>(&cfg),
            declaration::<GatewayStatus>(&cfg),
            declaration::<HistoryMessage>(&cfg),
            declaration::<SessionSummary>(&cfg),
            declaration::<ApprovalDecision>(&cfg),
            declaration::<ApprovalRequest>(&cfg),
            declaration::<FileLimits>(&cfg),
            declaration::<FileSummary>(&cfg),
            declaration::<ToDesktop>(&cfg),
            declaration::<ClientEvent>(&cfg),
            declaration::<SessionInfo>(&cfg),
            declaration::<Queued>(&cfg),
            declaration::<AgentView>(&cfg),
            declaration::<Status>(&cfg),
            declaration::<CallError>(&cfg),
            declaration::<Sent>(&cfg),
            declaration::<WireFile>(&cfg),
            declaration::<PairLink>(&cfg),
        ] {
            out.push_str(&decl);
            out.push('\n');
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    }

    #[test]
    fn ui_types_are_up_to_date() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/src/generated/types.ts");
        let fresh = generated();
        if std::env::var_os("CLAWTRAY_WRITE_UI_TYPES").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &fresh).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == fresh,
            "ui/src/generated/types.ts is stale: run `CLAWTRAY_WRITE_UI_TYPES=1 cargo test -p clawtray ui_types`"
        );
    }
}
