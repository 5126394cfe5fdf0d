//! The crate's one error type.

use std::path::PathBuf;

/// Errors of reading captures and capturing live.
///
/// Reading errors carry the byte offset in the capture where the problem was found; the
/// packets before it have been delivered already.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A capture file that cannot be read.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The first bytes are neither a pcap nor a pcapng magic number.
    #[error("not a pcap or pcapng capture: unknown magic number {magic:#010x} at byte offset 0")]
    UnknownFormat { magic: u32 },
    /// The capture ends in the middle of a header or a record.
    #[error(
        "truncated capture at byte offset {offset}: {what} needs {needed} bytes, {available} left"
    )]
    Truncated {
        offset: u64,
        what: &'static str,
        needed: u64,
        available: u64,
    },
    /// A header or block whose content is impossible (bad length, unknown interface ...).
    #[error("malformed capture at byte offset {offset}: {reason}")]
    Malformed { offset: u64, reason: String },
    /// A reading error, with the file it happened in.
    #[error("{}: {source}", path.display())]
    InFile {
        path: PathBuf,
        #[source]
        source: Box<Error>,
    },
    /// Live capture was not compiled in (the `live` cargo feature is off).
    #[error(
        "live capture was built out of this binary: rebuild with the `live` cargo feature \
         (`cargo build --features vigil-net/live`, needs libpcap-dev) to capture from interfaces"
    )]
    LiveDisabled,
    /// Opening or reading a live capture failed.
    #[error("live capture on {interface}: {reason}")]
    Live { interface: String, reason: String },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The byte offset of a reading error, when it has one.
    pub fn offset(&self) -> Option<u64> {
        match self {
            Error::Truncated { offset, .. } | Error::Malformed { offset, .. } => Some(*offset),
            Error::UnknownFormat { .. } => Some(0),
            Error::InFile { source, .. } => source.offset(),
            _ => None,
        }
    }
}
