//! Files sent with a chat message: how a file is described ([`Attachment`]), cut into parts that
//! travel as ordinary sealed, numbered, acknowledged messages ([`parts`]), checked against the
//! gateway's limits before anything is sent ([`check_files`]), and put back together and
//! verified at the agent ([`Assembly`]).
//!
//! A part is [`PART_BYTES`] of the file (base64 in the message: a 64 KiB string), so a part's
//! sealed frame stays far below the relay's frame limit and the pacer spreads a large file like
//! any backlog. Because parts are outbox messages, a broken link resends only the parts the agent
//! has not yet acknowledged.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Bytes of a file per part (48 KiB: 64 KiB of base64).
pub const PART_BYTES: usize = 48 * 1024;

/// The gateway's default ceiling for one attachment, decoded (`agents.defaults.mediaMaxMb`).
pub const DEFAULT_MAX_FILE_BYTES: u64 = 20 * 1024 * 1024;

/// The gateway's default ceiling for one image, decoded.
pub const DEFAULT_MAX_IMAGE_BYTES: u64 = 6 * 1024 * 1024;

/// The gateway's default frame limit (`policy.maxPayload`), which one `chat.send` — every
/// attachment in base64 — must fit.
pub const DEFAULT_MAX_PAYLOAD: u64 = 25 * 1024 * 1024;

/// Room left in a `chat.send` frame for everything but the attachments' base64.
const FRAME_ROOM: u64 = 64 * 1024;

/// Files one message may carry.
pub const MAX_FILES_PER_MESSAGE: usize = 10;

/// Longest file name kept (longer ones are shortened, keeping the extension).
pub const MAX_NAME_CHARS: usize = 200;

/// A file a chat message carries. Its parts travel before the message itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct Attachment {
    /// The file's id (made once by the desktop, like a message id): its parts carry it.
    pub file: String,
    /// The file's name, without any directory.
    pub name: String,
    /// Its MIME type (`image/png`, `application/pdf`, …).
    pub mime: String,
    /// Its size in bytes.
    #[ts(type = "number")]
    pub size: u64,
    /// Lowercase hex SHA-256 of its bytes: the agent checks the file it put together.
    pub sha256: String,
    /// How many parts it travels in.
    pub parts: u32,
}

impl Attachment {
    /// Whether this is an image (the gateway's own test: its MIME type).
    #[must_use]
    pub fn is_image(&self) -> bool {
        is_image(&self.mime)
    }
}

/// A file a message of the history carried, as the gateway lists it (its bytes stay with the
/// gateway: desktops show what it was, never fetch it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct FileSummary {
    /// Its name.
    pub name: String,
    /// Its MIME type, when the gateway says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub mime: Option<String>,
    /// Its size in bytes, when the gateway says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "number")]
    pub size: Option<u64>,
}

/// What files the agent's gateway takes, decoded sizes in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
pub struct FileLimits {
    /// One file.
    #[ts(type = "number")]
    pub max_bytes: u64,
    /// One image.
    #[ts(type = "number")]
    pub max_image_bytes: u64,
    /// All files of one message together.
    #[ts(type = "number")]
    pub max_message_bytes: u64,
}

impl Default for FileLimits {
    fn default() -> Self {
        Self::from_gateway(
            DEFAULT_MAX_FILE_BYTES,
            DEFAULT_MAX_IMAGE_BYTES,
            DEFAULT_MAX_PAYLOAD,
        )
    }
}

impl FileLimits {
    /// The limits a gateway advertises (`policy.attachments.maxBytes`, `maxImageBytes`,
    /// `policy.maxPayload`). A message's files travel to it as base64 in one frame.
    #[must_use]
    pub fn from_gateway(max_bytes: u64, max_image_bytes: u64, max_payload: u64) -> Self {
        let max_message_bytes = max_payload.saturating_sub(FRAME_ROOM) / 4 * 3;
        Self {
            max_bytes: max_bytes.min(max_message_bytes),
            max_image_bytes: max_image_bytes.min(max_bytes).min(max_message_bytes),
            max_message_bytes,
        }
    }
}

/// Whether `mime` names an image.
#[must_use]
pub fn is_image(mime: &str) -> bool {
    mime.trim().to_ascii_lowercase().starts_with("image/")
}

/// Why files cannot be sent; each a sentence for the person, said before anything is sent.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FileRefusal {
    #[error("“{name}” is empty; there is nothing to send")]
    Empty { name: String },
    #[error("“{name}” is {} — files up to {} can be sent", mb(*size), mb(*max))]
    TooLarge { name: String, size: u64, max: u64 },
    #[error("“{name}” is {} — images up to {} can be sent", mb(*size), mb(*max))]
    ImageTooLarge { name: String, size: u64, max: u64 },
    #[error("{count} files is too many for one message; send at most {max}")]
    TooMany { count: usize, max: usize },
    #[error("these files are {} together — one message can carry {}; send them in several messages", mb(*size), mb(*max))]
    MessageTooLarge { size: u64, max: u64 },
    #[error("“{name}” is not a file that can be sent ({why})")]
    Unsupported { name: String, why: String },
}

/// A size for people: `5.0 MB`, `640 KB`.
#[must_use]
pub fn mb(bytes: u64) -> String {
    if bytes >= 1_000_000 {
        format!("{:.1} MB", bytes as f64 / 1_000_000.0)
    } else {
        format!("{} KB", bytes.div_ceil(1000))
    }
}

/// Check files (name, MIME type, size) against `limits` before anything is sent.
pub fn check_files<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a str, u64)>,
    limits: &FileLimits,
) -> Result<(), FileRefusal> {
    let (mut count, mut total) = (0usize, 0u64);
    for (name, mime, size) in files {
        count += 1;
        if size == 0 {
            return Err(FileRefusal::Empty { name: name.into() });
        }
        if mime.trim().is_empty() || mime.contains(char::is_whitespace) || !mime.contains('/') {
            return Err(FileRefusal::Unsupported {
                name: name.into(),
                why: format!("its type “{mime}” is not a MIME type"),
            });
        }
        if is_image(mime) && size > limits.max_image_bytes {
            return Err(FileRefusal::ImageTooLarge {
                name: name.into(),
                size,
                max: limits.max_image_bytes,
            });
        }
        if size > limits.max_bytes {
            return Err(FileRefusal::TooLarge {
                name: name.into(),
                size,
                max: limits.max_bytes,
            });
        }
        total = total.saturating_add(size);
    }
    if count > MAX_FILES_PER_MESSAGE {
        return Err(FileRefusal::TooMany {
            count,
            max: MAX_FILES_PER_MESSAGE,
        });
    }
    if total > limits.max_message_bytes {
        return Err(FileRefusal::MessageTooLarge {
            size: total,
            max: limits.max_message_bytes,
        });
    }
    Ok(())
}

/// A file name safe to show and to hand on: no directories, no control characters, not empty,
/// at most [`MAX_NAME_CHARS`] (the extension kept).
#[must_use]
pub fn clean_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut s: String = base.chars().filter(|c| !c.is_control()).collect();
    s = s.trim().trim_start_matches('.').to_owned();
    if s.is_empty() {
        return "file".into();
    }
    if s.chars().count() > MAX_NAME_CHARS {
        let ext: String = match s.rfind('.') {
            Some(i) if s.len() - i <= 16 => s[i..].to_owned(),
            _ => String::new(),
        };
        let keep = MAX_NAME_CHARS - ext.chars().count();
        s = s.chars().take(keep).collect::<String>() + &ext;
    }
    s
}

/// Whether `id` is a valid file id: 1 to 64 of `[A-Za-z0-9_-]` (it names files on the agent).
#[must_use]
pub fn valid_file_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Lowercase hex SHA-256.
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// How many parts a file of `size` bytes travels in.
#[must_use]
pub fn parts_needed(size: u64) -> u32 {
    u32::try_from(size.div_ceil(PART_BYTES as u64)).unwrap_or(u32::MAX)
}

/// Describe `bytes` as a file to send (`file`: its id).
#[must_use]
pub fn describe(file: &str, name: &str, mime: &str, bytes: &[u8]) -> Attachment {
    Attachment {
        file: file.into(),
        name: clean_name(name),
        mime: mime.trim().to_ascii_lowercase(),
        size: bytes.len() as u64,
        sha256: sha256_hex(bytes),
        parts: parts_needed(bytes.len() as u64),
    }
}

/// The parts of `bytes`, in order: (index, base64 of up to [`PART_BYTES`]).
pub fn parts(bytes: &[u8]) -> impl Iterator<Item = (u32, String)> + '_ {
    bytes.chunks(PART_BYTES).enumerate().map(|(i, c)| {
        (
            i as u32,
            base64::engine::general_purpose::STANDARD.encode(c),
        )
    })
}

/// Why a received part or a put-together file is not taken.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PartError {
    #[error("a file part names an invalid file id")]
    BadFileId,
    #[error("a file part is not valid base64")]
    BadBase64,
    #[error("a file part is larger than {PART_BYTES} bytes")]
    TooLarge,
    #[error("part {index} of “{name}” is missing")]
    Missing { name: String, index: u32 },
    #[error("“{name}” did not arrive whole ({got} of {size} bytes)")]
    WrongSize { name: String, got: u64, size: u64 },
    #[error("“{name}” arrived damaged (its SHA-256 does not match)")]
    WrongHash { name: String },
    #[error("“{name}” is described wrongly ({why})")]
    BadAttachment { name: String, why: String },
}

/// Decode one received part (checking its id and size).
pub fn decode_part(file: &str, data: &str) -> Result<Vec<u8>, PartError> {
    if !valid_file_id(file) {
        return Err(PartError::BadFileId);
    }
    if data.len() > PART_BYTES.div_ceil(3) * 4 {
        return Err(PartError::TooLarge);
    }
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|_| PartError::BadBase64)
}

/// Check an attachment's description before any of its parts are used.
pub fn check_attachment(a: &Attachment) -> Result<(), PartError> {
    let bad = |why: &str| PartError::BadAttachment {
        name: a.name.clone(),
        why: why.into(),
    };
    if !valid_file_id(&a.file) {
        return Err(bad("an invalid file id"));
    }
    if a.parts != parts_needed(a.size) || a.size == 0 {
        return Err(bad("its size and part count disagree"));
    }
    if a.sha256.len() != 64 || !a.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad("not a SHA-256"));
    }
    Ok(())
}

/// Putting a file back together from its parts, in order, checking size and hash at the end.
pub struct Assembly<'a> {
    attachment: &'a Attachment,
    bytes: Vec<u8>,
    next: u32,
}

impl<'a> Assembly<'a> {
    /// Start putting `a` together (its description checked first).
    pub fn new(a: &'a Attachment) -> Result<Self, PartError> {
        check_attachment(a)?;
        let cap = usize::try_from(a.size).unwrap_or(0).min(64 * 1024 * 1024);
        Ok(Self {
            attachment: a,
            bytes: Vec::with_capacity(cap),
            next: 0,
        })
    }

    /// The index of the part wanted next.
    #[must_use]
    pub fn next_index(&self) -> u32 {
        self.next
    }

    /// Add the next part.
    pub fn push(&mut self, part: &[u8]) -> Result<(), PartError> {
        let a = self.attachment;
        if part.len() > PART_BYTES || self.bytes.len() as u64 + part.len() as u64 > a.size {
            return Err(PartError::WrongSize {
                name: a.name.clone(),
                got: self.bytes.len() as u64 + part.len() as u64,
                size: a.size,
            });
        }
        self.bytes.extend_from_slice(part);
        self.next += 1;
        Ok(())
    }

    /// The whole file, if every part came and it is the file described.
    pub fn finish(self) -> Result<Vec<u8>, PartError> {
        let a = self.attachment;
        if self.next < a.parts {
            return Err(PartError::Missing {
                name: a.name.clone(),
                index: self.next,
            });
        }
        if self.bytes.len() as u64 != a.size {
            return Err(PartError::WrongSize {
                name: a.name.clone(),
                got: self.bytes.len() as u64,
                size: a.size,
            });
        }
        if sha256_hex(&self.bytes) != a.sha256.to_ascii_lowercase() {
            return Err(PartError::WrongHash {
                name: a.name.clone(),
            });
        }
        Ok(self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn a_file_goes_in_parts_and_comes_back_whole() {
        for n in [
            1,
            PART_BYTES - 1,
            PART_BYTES,
            PART_BYTES + 1,
            5 * PART_BYTES + 7,
        ] {
            let b = bytes(n);
            let a = describe("f1", "dir/pic.png", "IMAGE/PNG", &b);
            assert_eq!(a.name, "pic.png");
            assert_eq!(a.mime, "image/png");
            let ps: Vec<_> = parts(&b).collect();
            assert_eq!(ps.len() as u32, a.parts);
            assert!(ps.iter().all(|(_, d)| d.len() <= 65_536));
            let mut asm = Assembly::new(&a).unwrap();
            for (i, d) in &ps {
                assert_eq!(*i, asm.next_index());
                asm.push(&decode_part("f1", d).unwrap()).unwrap();
            }
            assert_eq!(asm.finish().unwrap(), b);
        }
    }

    #[test]
    fn a_missing_or_damaged_part_is_said_not_used() {
        let b = bytes(3 * PART_BYTES);
        let a = describe("f1", "a.bin", "application/octet-stream", &b);
        let ps: Vec<_> = parts(&b).collect();
        let mut asm = Assembly::new(&a).unwrap();
        asm.push(&decode_part("f1", &ps[0].1).unwrap()).unwrap();
        assert!(matches!(
            asm.finish(),
            Err(PartError::Missing { index: 1, .. })
        ));
        let mut asm = Assembly::new(&a).unwrap();
        let mut first = decode_part("f1", &ps[0].1).unwrap();
        first[7] ^= 1;
        asm.push(&first).unwrap();
        for (_, d) in &ps[1..] {
            asm.push(&decode_part("f1", d).unwrap()).unwrap();
        }
        assert!(matches!(asm.finish(), Err(PartError::WrongHash { .. })));
        assert_eq!(decode_part("../x", "AA=="), Err(PartError::BadFileId));
        assert_eq!(decode_part("f1", "***"), Err(PartError::BadBase64));
        let huge = "A".repeat(PART_BYTES / 3 * 4 + 8);
        assert_eq!(decode_part("f1", &huge), Err(PartError::TooLarge));
        let mut lying = a.clone();
        lying.parts = 1;
        assert!(Assembly::new(&lying).is_err());
    }

    #[test]
    fn limits_are_checked_before_sending_with_a_sentence() {
        let l = FileLimits::default();
        // a 20 MB file is 26.7 MB of base64: more than the gateway's 25 MiB frame holds
        assert_eq!(l.max_bytes, l.max_message_bytes);
        assert!(l.max_bytes < DEFAULT_MAX_FILE_BYTES);
        assert!(l.max_message_bytes < DEFAULT_MAX_PAYLOAD / 4 * 3);
        assert_eq!(l.max_image_bytes, DEFAULT_MAX_IMAGE_BYTES);
        assert!(check_files([("a.png", "image/png", 5_000_000)], &l).is_ok());
        let e = check_files([("big.png", "image/png", 7_000_000)], &l).unwrap_err();
        assert_eq!(
            e.to_string(),
            "“big.png” is 7.0 MB — images up to 6.3 MB can be sent"
        );
        assert!(matches!(
            check_files([("v.mp4", "video/mp4", 30_000_000)], &l),
            Err(FileRefusal::TooLarge { .. })
        ));
        assert!(matches!(
            check_files([("e.txt", "text/plain", 0)], &l),
            Err(FileRefusal::Empty { .. })
        ));
        assert!(matches!(
            check_files([("x", "", 3)], &l),
            Err(FileRefusal::Unsupported { .. })
        ));
        let many: Vec<_> = (0..11).map(|_| ("a.txt", "text/plain", 1)).collect();
        assert!(matches!(
            check_files(many, &l),
            Err(FileRefusal::TooMany { count: 11, .. })
        ));
        let two = [
            ("a.bin", "application/zip", 15_000_000),
            ("b.bin", "application/zip", 15_000_000),
        ];
        assert!(matches!(
            check_files(two, &l),
            Err(FileRefusal::MessageTooLarge { .. })
        ));
    }

    #[test]
    fn names_lose_directories_and_control_characters() {
        assert_eq!(clean_name("C:\\Users\\me\\a.txt"), "a.txt");
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("\u{7}bell.txt"), "bell.txt");
        assert_eq!(clean_name(""), "file");
        assert_eq!(clean_name("..."), "file");
        let long = format!("{}.jpeg", "x".repeat(400));
        let c = clean_name(&long);
        assert_eq!(c.chars().count(), MAX_NAME_CHARS);
        assert!(c.ends_with(".jpeg"));
    }
}
