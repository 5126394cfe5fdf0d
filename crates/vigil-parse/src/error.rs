//! The crate's one error type.

/// Everything that can go wrong in this crate. Messages say what is wrong with the input,
/// since the server turns them into `400` answers as they are.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A syslog datagram or frame that is empty (or only whitespace).
    #[error("empty syslog message")]
    Empty,
    /// A `<PRI>` that is not 1 to 3 digits between 0 and 191.
    #[error("bad syslog priority {0:?}: expected <0> to <191>")]
    Priority(String),
    /// An RFC 5424 message (`<PRI>1 ...`) whose header or structured data is malformed.
    #[error("malformed RFC 5424 message: {0}")]
    Rfc5424(String),
    /// A TCP syslog frame longer than the framer's limit; the framer resynchronises at the next LF.
    #[error("syslog frame too long: {len} bytes or more, the limit is {max}")]
    FrameTooLong { len: usize, max: usize },
    /// The stream ended inside an octet-counted frame.
    #[error("syslog stream ended inside a frame: expected {expected} bytes, got {got}")]
    Truncated { expected: usize, got: usize },
    /// A Loki push body that cannot be decoded; the message says why.
    #[error("loki push: {0}")]
    Loki(String),
    /// A Loki push body that decompresses to more than the allowed size.
    #[error("loki push: body decompresses to more than {max} bytes")]
    TooLarge { max: usize },
    /// A Loki label selector that is not `{name="value", ...}`.
    #[error("bad label set {selector:?}: {reason}")]
    Labels { selector: String, reason: String },
    /// A line of input that the requested format cannot parse.
    #[error("line {line}: {reason}")]
    Line { line: u64, reason: String },
    /// Reading input failed.
    #[error("line {line}: read error: {source}")]
    Io {
        line: u64,
        #[source]
        source: std::io::Error,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
