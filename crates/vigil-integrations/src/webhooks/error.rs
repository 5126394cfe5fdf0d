/// What went wrong preparing or guarding a webhook.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WebhookError {
    /// Not `whsec_` followed by base64 of 24 to 64 bytes.
    #[error("invalid webhook secret: {0}")]
    InvalidSecret(String),
    #[error("invalid webhook URL '{url}': {message}")]
    InvalidUrl { url: String, message: String },
    #[error("invalid custom header: {0}")]
    InvalidHeader(String),
    /// The SSRF guard refused the destination.
    #[error(
        "destination {host} refused: {addr} is {reason} (set webhooks.allow_private_destinations to allow it)"
    )]
    DestinationRefused {
        host: String,
        addr: std::net::IpAddr,
        reason: &'static str,
    },
    #[error("cannot resolve {host}: {message}")]
    Resolve { host: String, message: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}
