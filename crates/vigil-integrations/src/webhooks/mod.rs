//! Outgoing webhooks per the Standard Webhooks specification
//! (<https://www.standardwebhooks.com>): signing, sending, classifying the answer, the retry
//! schedule, and the SSRF guard. No database and no server: the caller (vigil-server's
//! `webhooks/`) keeps endpoints and deliveries and decides what to do with each attempt.
//!
//! * Signing: `webhook-id`, `webhook-timestamp` (Unix seconds) and
//!   `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` with the
//!   endpoint's secret, written `whsec_<base64 of 24 to 64 random bytes>`.
//! * Sending: one shared HTTPS client (rustls, Mozilla's roots from `webpki-roots`), no
//!   proxies, no redirects (a 3xx is a failed attempt), a per-endpoint timeout, custom headers
//!   that can never replace the signature headers.
//! * Classifying: 2xx delivered; 410 Gone disables the endpoint; anything else (429, 5xx,
//!   other 4xx, 3xx, timeouts, connection errors) is retried, waiting at least `Retry-After`
//!   (seconds or an HTTP date, capped) — as Svix does; the specification leaves 4xx to the
//!   sender.
//! * Retry schedule ([`WebhookRetryPolicy`]): exponential backoff with jitter, and a maximum
//!   age after which the delivery is dead.
//! * SSRF guard ([`WebhookConfig::allow_private_destinations`] false, the default): a
//!   destination whose host is or resolves to a loopback, private, link-local, unique-local,
//!   shared (CGNAT), multicast, reserved or unspecified address (IPv4 and IPv6, IPv4-mapped
//!   included) is refused. The check lives in the client's DNS resolver, so the address
//!   checked is the address connected to; the connected peer is checked again after the answer.
//!
//! ```
//! use vigil_integrations::webhooks::WebhookSecret;
//! let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
//! let sig = secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
//! assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
//! assert!(WebhookSecret::parse("not-a-secret").is_err());
//! ```

mod client;
mod config;
mod error;

pub use client::{
    WebhookAttempt, WebhookClient, WebhookOutcome, WebhookRequest, WebhookSecret,
    destination_refusal, parse_retry_after, validate_header,
};
pub use config::{WebhookConfig, WebhookRetryPolicy};
pub use error::WebhookError;

/// Header names the signature owns; custom headers may not set them.
pub const SIGNATURE_HEADERS: [&str; 3] = ["webhook-id", "webhook-timestamp", "webhook-signature"];
