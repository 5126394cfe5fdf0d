use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

/// How the client sends.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Allow loopback, private, link-local and other internal destinations (SSRF guard off).
    pub allow_private_destinations: bool,
    /// `User-Agent` of every request.
    pub user_agent: String,
    /// Most bytes of a response body read (the rest is dropped; a snippet goes into errors).
    pub max_response_bytes: usize,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            allow_private_destinations: false,
            user_agent: concat!("Vigil-Webhooks/", env!("CARGO_PKG_VERSION")).into(),
            max_response_bytes: 64 * 1024,
        }
    }
}

/// When a failed delivery is tried again, and when it is given up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WebhookRetryPolicy {
    /// Wait after the first failure; doubled after each further one.
    pub base: Duration,
    /// Longest wait between two attempts (backoff and `Retry-After` alike).
    pub max_delay: Duration,
    /// A delivery not delivered this long after it was created is dead.
    pub max_age: Duration,
}

impl Default for WebhookRetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(5),
            max_delay: Duration::from_secs(3600),
            max_age: Duration::from_secs(24 * 3600),
        }
    }
}

impl WebhookRetryPolicy {
    /// The wait after `attempts` failed attempts (1 after the first): `base * 2^(attempts-1)`
    /// capped at `max_delay`, of which a random half is taken off ("equal jitter", so
    /// endpoints that failed together do not come back together), then at least
    /// `retry_after` (capped at `max_delay` too).
    pub fn delay(&self, attempts: u32, retry_after: Option<Duration>) -> Duration {
        let exp = attempts.saturating_sub(1).min(30);
        let full = self
            .base
            .saturating_mul(1u32 << exp)
            .min(self.max_delay)
            .max(Duration::from_millis(1));
        let half = full / 2;
        let jitter = rand::thread_rng().gen_range(Duration::ZERO..=half);
        let backoff = half + jitter;
        match retry_after {
            Some(ra) => backoff.max(ra.min(self.max_delay)),
            None => backoff,
        }
    }

    /// When to try again after `attempts` failed attempts of a delivery created at
    /// `created_at`; `None` when that would pass the maximum age (the delivery is dead).
    pub fn next_attempt(
        &self,
        created_at: DateTime<Utc>,
        now: DateTime<Utc>,
        attempts: u32,
        retry_after: Option<Duration>,
    ) -> Option<DateTime<Utc>> {
        let delay = chrono::Duration::from_std(self.delay(attempts, retry_after)).ok()?;
        let max_age = chrono::Duration::from_std(self.max_age).ok()?;
        let next = now + delay;
        (next <= created_at + max_age).then_some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        let p = WebhookRetryPolicy {
            base: Duration::from_secs(4),
            max_delay: Duration::from_secs(60),
            max_age: Duration::from_secs(3600),
        };
        for _ in 0..200 {
            let d1 = p.delay(1, None);
            assert!(
                d1 >= Duration::from_secs(2) && d1 <= Duration::from_secs(4),
                "{d1:?}"
            );
            let d3 = p.delay(3, None);
            assert!(
                d3 >= Duration::from_secs(8) && d3 <= Duration::from_secs(16),
                "{d3:?}"
            );
            let d20 = p.delay(20, None);
            assert!(
                d20 >= Duration::from_secs(30) && d20 <= Duration::from_secs(60),
                "{d20:?}"
            );
            // Retry-After wins when longer, and is capped.
            assert!(p.delay(1, Some(Duration::from_secs(30))) >= Duration::from_secs(30));
            assert!(p.delay(1, Some(Duration::from_secs(86400))) <= Duration::from_secs(60));
        }
        // Not all the same: the jitter is there.
        let ds: std::collections::HashSet<_> = (0..50).map(|_| p.delay(5, None)).collect();
        assert!(ds.len() > 1);
    }

    #[test]
    fn past_the_maximum_age_a_delivery_is_dead() {
        let p = WebhookRetryPolicy {
            base: Duration::from_secs(10),
            max_delay: Duration::from_secs(10),
            max_age: Duration::from_secs(60),
        };
        let t0 = Utc::now();
        assert!(p.next_attempt(t0, t0, 1, None).is_some());
        assert!(
            p.next_attempt(t0, t0 + chrono::Duration::seconds(55), 5, None)
                .is_none()
        );
    }
}
