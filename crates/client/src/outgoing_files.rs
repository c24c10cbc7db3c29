//! Files the person attaches to a message, before they leave: checked against the agent's
//! gateway's limits (a sentence, before anything is queued), described ([`Attachment`]) and cut
//! into the parts that travel ahead of the message. Pure.

use clawtray_proto::chat::ToAgent;
use clawtray_proto::files::{check_files, describe, parts, Attachment, FileLimits, FileRefusal};

/// A file to send with a message.
#[derive(Clone, PartialEq, Eq)]
pub struct OutgoingFile {
    /// Its name (directories are dropped).
    pub name: String,
    /// Its MIME type (`image/png`, …).
    pub mime: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for OutgoingFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingFile")
            .field("name", &self.name)
            .field("mime", &self.mime)
            .field("size", &self.bytes.len())
            .finish()
    }
}

/// The MIME type of a file by its name's extension (`application/octet-stream` when unknown):
/// for callers that have a path, not a browser's idea of the type (the CLI). The gateway sniffs
/// the bytes itself and says when they disagree.
#[must_use]
pub fn mime_for_name(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "svg" => "image/svg+xml",
        "pdf" => "application/pdf",
        "txt" | "log" => "text/plain",
        "md" => "text/markdown",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "json" => "application/json",
        "zip" => "application/zip",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "mp4" => "video/mp4",
        _ => "application/octet-stream",
    }
}

/// Check `files` against `limits`; on success, their descriptions and the part messages to
/// queue before the chat message, in order. `new_id` makes each file's id.
pub fn prepare(
    files: &[OutgoingFile],
    limits: &FileLimits,
    mut new_id: impl FnMut() -> String,
) -> Result<(Vec<Attachment>, Vec<ToAgent>), FileRefusal> {
    check_files(
        files
            .iter()
            .map(|f| (f.name.as_str(), f.mime.as_str(), f.bytes.len() as u64)),
        limits,
    )?;
    let mut described = Vec::with_capacity(files.len());
    let mut messages = Vec::new();
    for f in files {
        let a = describe(&new_id(), &f.name, &f.mime, &f.bytes);
        messages.extend(parts(&f.bytes).map(|(index, data)| ToAgent::FilePart {
            file: a.file.clone(),
            index,
            data,
        }));
        described.push(a);
    }
    Ok((described, messages))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clawtray_proto::files::PART_BYTES;

    #[test]
    fn types_by_extension() {
        assert_eq!(mime_for_name("a/B.PNG"), "image/png");
        assert_eq!(mime_for_name("report.pdf"), "application/pdf");
        assert_eq!(mime_for_name("Makefile"), "application/octet-stream");
    }

    #[test]
    fn parts_come_before_their_message_and_refusals_queue_nothing() {
        let pic = OutgoingFile {
            name: "/home/me/pic.png".into(),
            mime: "image/png".into(),
            bytes: vec![1; 2 * PART_BYTES + 5],
        };
        let mut n = 0;
        let (a, msgs) = prepare(std::slice::from_ref(&pic), &FileLimits::default(), || {
            n += 1;
            format!("f{n}")
        })
        .unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].name, "pic.png");
        assert_eq!(a[0].parts, 3);
        assert_eq!(msgs.len(), 3);
        assert!(matches!(&msgs[2], ToAgent::FilePart { file, index: 2, .. } if file == "f1"));
        let small = FileLimits {
            max_bytes: 100,
            max_image_bytes: 100,
            max_message_bytes: 100,
        };
        let e = prepare(&[pic], &small, || "x".into()).unwrap_err();
        assert!(e.to_string().contains("pic.png"), "{e}");
        assert!(format!(
            "{:?}",
            OutgoingFile {
                name: "a".into(),
                mime: "text/plain".into(),
                bytes: b"SECRET".to_vec()
            }
        )
        .find("SECRET")
        .is_none());
    }
}
