//! Signing secrets at rest: AES-256-GCM under a key derived from the server's JWT secret
//! (`auth.jwt_secret` or `<data_dir>/jwt-secret`, which replicas already share), with the
//! organization id as associated data so a ciphertext cannot be moved to another org.
//! Stored as `v1:<base64 of nonce || ciphertext || tag>`. Rotating the JWT secret makes the
//! stored secrets unreadable: rotate every endpoint's secret after it (deliveries fail with
//! a clear error until then).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use uuid::Uuid;
use vigil_integrations::webhooks::WebhookSecret;

const PREFIX: &str = "v1:";

/// Encrypts and decrypts endpoint secrets.
pub struct SecretBox {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl SecretBox {
    pub fn from_jwt_secret(jwt_secret: &[u8]) -> Self {
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, jwt_secret);
        let derived = ring::hmac::sign(&k, b"vigil webhook secrets v1");
        let key = UnboundKey::new(&AES_256_GCM, derived.as_ref())
            .expect("an HMAC-SHA256 tag is a 32-byte AES-256 key");
        Self {
            key: LessSafeKey::new(key),
            rng: SystemRandom::new(),
        }
    }

    pub fn seal(&self, org: Uuid, secret: &WebhookSecret) -> anyhow::Result<String> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| anyhow::anyhow!("no randomness for a nonce"))?;
        let mut data = secret.expose().into_bytes();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(org.as_bytes()),
                &mut data,
            )
            .map_err(|_| anyhow::anyhow!("cannot encrypt the webhook secret"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(format!("{PREFIX}{}", B64.encode(out)))
    }

    pub fn open(&self, org: Uuid, stored: &str) -> anyhow::Result<WebhookSecret> {
        let raw = stored
            .strip_prefix(PREFIX)
            .and_then(|b| B64.decode(b).ok())
            .filter(|r| r.len() > NONCE_LEN)
            .ok_or_else(|| anyhow::anyhow!("the stored webhook secret is not in a known form"))?;
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| anyhow::anyhow!("bad nonce in the stored webhook secret"))?;
        let mut sealed = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(org.as_bytes()), &mut sealed)
            .map_err(|_| {
                anyhow::anyhow!(
                    "the stored webhook secret cannot be decrypted (was the JWT secret changed? \
                     rotate the endpoint's secret)"
                )
            })?;
        let text = std::str::from_utf8(plain)
            .map_err(|_| anyhow::anyhow!("the stored webhook secret is not text"))?;
        Ok(WebhookSecret::parse(text)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_round_trip_only_with_the_same_key_and_org() {
        let b = SecretBox::from_jwt_secret(b"0123456789abcdef0123456789abcdef");
        let org = Uuid::new_v4();
        let s = WebhookSecret::generate();
        let sealed = b.seal(org, &s).unwrap();
        assert!(!sealed.contains(&s.expose()[6..]));
        assert_eq!(b.open(org, &sealed).unwrap(), s);
        // Two seals of one secret differ (fresh nonce).
        assert_ne!(b.seal(org, &s).unwrap(), sealed);
        assert!(b.open(Uuid::new_v4(), &sealed).is_err());
        let other = SecretBox::from_jwt_secret(b"another secret of 32 bytes or more!!");
        assert!(other.open(org, &sealed).is_err());
        assert!(b.open(org, "garbage").is_err());
    }
}
