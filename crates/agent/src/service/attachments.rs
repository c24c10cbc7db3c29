//! The hub's part in files sent with chat messages: each part from a desktop is kept (sealed,
//! fsynced, off the hub's thread) before it is acknowledged; when the message that carries the
//! files goes to the gateway they are put back together, checked (size, SHA-256, the gateway's
//! limits) and passed to `chat.send` as attachments; once the gateway has accepted the message
//! (or it was refused) the parts are removed. A file that cannot be used ends its message with a
//! sentence (`chat_error` with the message's id), never silently.

use std::sync::Arc;

use base64::Engine as _;
use tokio::sync::oneshot;
use tracing::{debug, warn};

use clawtray_proto::chat::ToDesktop;
use clawtray_proto::files::{check_files, Attachment, FileLimits};

use super::{Done, Hub};
use crate::gateway::calls::ChatAttachment;
use crate::received_files::{FileError, ReceivedFiles};

impl Hub {
    /// Keep one part of a file (off the hub's thread), then let the link acknowledge it. A part
    /// that cannot be kept (a full disk) is still acknowledged — holding the link would stop
    /// every other message — and the desktop is told at once; the message it belongs to then
    /// ends with a sentence when it comes.
    pub(super) fn on_file_part(
        &self,
        desktop: String,
        file: String,
        index: u32,
        data: String,
        stored: oneshot::Sender<()>,
    ) {
        let (files, done) = (self.received.clone(), self.done_tx.clone());
        tokio::spawn(async move {
            let (d, f) = (desktop.clone(), file.clone());
            let kept =
                tokio::task::spawn_blocking(move || files.put_part(&d, &f, index, &data)).await;
            let _ = stored.send(());
            match kept {
                Ok(Ok(())) => debug!(%file, index, "a file part is kept"),
                Ok(Err(e)) => {
                    warn!(%file, index, error = %e, "a file part could not be kept");
                    let note = ToDesktop::ChatError {
                        session: None,
                        run_id: None,
                        message: format!(
                            "the agent could not keep a file you attached ({e}); the message it belongs to will not be sent — send it again"
                        ),
                    };
                    let _ = done.send(Done::Reply { desktop, msg: note }).await;
                }
                Err(e) => warn!(%file, error = %e, "keeping a file part stopped"),
            }
        });
    }

    /// Remove the kept parts of `files` (their message went to the gateway, or was refused).
    pub(super) fn drop_files(&self, desktop: &str, files: &[Attachment]) {
        for a in files {
            self.received.remove(desktop, &a.file);
        }
    }
}

/// The files of a message, put together and checked, as `chat.send` takes them.
pub(super) async fn for_gateway(
    store: Arc<ReceivedFiles>,
    desktop: String,
    files: Vec<Attachment>,
    limits: FileLimits,
) -> Result<Vec<ChatAttachment>, String> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    check_files(
        files
            .iter()
            .map(|a| (a.name.as_str(), a.mime.as_str(), a.size)),
        &limits,
    )
    .map_err(|e| e.to_string())?;
    let built = tokio::task::spawn_blocking(move || {
        files
            .iter()
            .map(|a| {
                let bytes = store.assemble(&desktop, a)?;
                Ok(ChatAttachment {
                    kind: if a.is_image() { "image" } else { "file" },
                    mime_type: a.mime.clone(),
                    file_name: a.name.clone(),
                    content: base64::engine::general_purpose::STANDARD.encode(&bytes),
                    size_bytes: a.size,
                })
            })
            .collect::<Result<Vec<_>, FileError>>()
    })
    .await;
    match built {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("putting the files together stopped ({e})")),
    }
}
