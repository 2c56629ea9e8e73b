//! Secrets at rest. Provider credentials in models added through the API are sealed with
//! ChaCha20-Poly1305 (authenticated encryption) under a key derived from `LITELLM_SALT_KEY` (else
//! the master key) with HKDF-SHA256, one derived key per purpose, so a key for one kind of secret
//! never decrypts another. Sealed text: `v1:` + base64(nonce ‖ ciphertext ‖ tag).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use rand::RngCore;
use sha2::Sha256;

use crate::secret::Secret;

/// What a derived key is for; part of the HKDF `info`, so each purpose has its own key.
#[derive(Debug, Clone, Copy)]
pub enum Purpose {
    /// `litellm_params` of models stored in the database.
    ModelCredentials,
    /// `environment_variables` values stored by `POST /config/update`.
    ConfigSecrets,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Self::ModelCredentials => b"tollgate/v1/model-credentials",
            Self::ConfigSecrets => b"tollgate/v1/config-secrets",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("no LITELLM_SALT_KEY or master key to derive an encryption key from")]
    NoKey,
    #[error("sealed value is malformed")]
    Malformed,
    #[error("sealed value does not decrypt with this LITELLM_SALT_KEY (changed or tampered with)")]
    Decrypt,
}

const PREFIX: &str = "v1:";
const SALT: &[u8] = b"tollgate-secrets-at-rest";

/// Seals and opens secrets for one purpose.
pub struct Sealer {
    cipher: ChaCha20Poly1305,
}

impl Sealer {
    /// Derive the key for `purpose` from the salt key (`LITELLM_SALT_KEY`, else the master key).
    pub fn new(salt_key: Option<&Secret>, purpose: Purpose) -> Result<Self, CryptoError> {
        let ikm = salt_key
            .map(Secret::expose)
            .filter(|k| !k.is_empty())
            .ok_or(CryptoError::NoKey)?;
        let hk = Hkdf::<Sha256>::new(Some(SALT), ikm.as_bytes());
        let mut key = [0u8; 32];
        hk.expand(purpose.label(), &mut key)
            .map_err(|_| CryptoError::NoKey)?;
        Ok(Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
        })
    }

    pub fn seal(&self, plaintext: &[u8]) -> String {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext)
            .expect("ChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
        let mut out = Vec::with_capacity(12 + ciphertext.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        format!("{PREFIX}{}", B64.encode(out))
    }

    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, CryptoError> {
        let raw = sealed.strip_prefix(PREFIX).ok_or(CryptoError::Malformed)?;
        let bytes = B64.decode(raw).map_err(|_| CryptoError::Malformed)?;
        if bytes.len() < 12 + 16 {
            return Err(CryptoError::Malformed);
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| CryptoError::Decrypt)
    }
}

/// Open a value LiteLLM sealed in its database (`encrypt_value_helper`: NaCl's `SecretBox`,
/// XSalsa20-Poly1305, under the SHA-256 of the salt key; stored as standard base64 of
/// nonce ‖ tag ‖ ciphertext). Used once, to carry credentials over from a LiteLLM database.
pub fn open_litellm(salt_key: &Secret, value: &str) -> Result<String, CryptoError> {
    use crypto_secretbox::aead::{Aead as _, KeyInit as _};
    use crypto_secretbox::XSalsa20Poly1305;
    use sha2::Digest as _;
    let bytes = B64
        .decode(value.trim())
        .map_err(|_| CryptoError::Malformed)?;
    if bytes.len() < 24 + 16 {
        return Err(CryptoError::Malformed);
    }
    let key = Sha256::digest(salt_key.expose().as_bytes());
    let cipher = XSalsa20Poly1305::new(crypto_secretbox::Key::from_slice(&key));
    let (nonce, sealed) = bytes.split_at(24);
    let plain = cipher
        .decrypt(crypto_secretbox::Nonce::from_slice(nonce), sealed)
        .map_err(|_| CryptoError::Decrypt)?;
    String::from_utf8(plain).map_err(|_| CryptoError::Malformed)
}

/// Seal a value as LiteLLM does ([`open_litellm`]'s inverse): for tests and tools that must
/// produce a LiteLLM database's contents.
pub fn seal_litellm(salt_key: &Secret, value: &str) -> String {
    use crypto_secretbox::aead::{Aead as _, KeyInit as _};
    use crypto_secretbox::XSalsa20Poly1305;
    use sha2::Digest as _;
    let key = Sha256::digest(salt_key.expose().as_bytes());
    let cipher = XSalsa20Poly1305::new(crypto_secretbox::Key::from_slice(&key));
    let mut nonce = [0u8; 24];
    rand::rng().fill_bytes(&mut nonce);
    let sealed = cipher
        .encrypt(
            crypto_secretbox::Nonce::from_slice(&nonce),
            value.as_bytes(),
        )
        .expect("XSalsa20-Poly1305 encryption cannot fail for in-memory buffers");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    B64.encode(out)
}

/// The salt key: `LITELLM_SALT_KEY`, else the master key (as LiteLLM does).
pub fn salt_key(master_key: Option<&Secret>) -> Option<Secret> {
    std::env::var("LITELLM_SALT_KEY")
        .ok()
        .filter(|k| !k.is_empty())
        .map(Secret::new)
        .or_else(|| master_key.cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trip_and_tamper_detection() {
        let key = Secret::new("sk-salt-key-for-tests-0123456789");
        let sealer = Sealer::new(Some(&key), Purpose::ModelCredentials).unwrap();
        let sealed = sealer.seal(br#"{"api_key":"sk-provider-secret"}"#);
        assert!(!sealed.contains("sk-provider-secret"));
        assert_eq!(
            sealer.open(&sealed).unwrap(),
            br#"{"api_key":"sk-provider-secret"}"#
        );
        assert_ne!(
            sealer.seal(b"x"),
            sealer.seal(b"x"),
            "fresh nonce every time"
        );

        let mut tampered = sealed.clone();
        tampered.replace_range(10..11, if &sealed[10..11] == "A" { "B" } else { "A" });
        assert!(sealer.open(&tampered).is_err());

        let other = Sealer::new(
            Some(&Secret::new("another-salt-key-000000000000")),
            Purpose::ModelCredentials,
        )
        .unwrap();
        assert!(matches!(other.open(&sealed), Err(CryptoError::Decrypt)));
        assert!(Sealer::new(None, Purpose::ModelCredentials).is_err());
    }

    #[test]
    fn values_litellm_sealed_open_with_its_salt_key() {
        // Sealed by LiteLLM's `encrypt_value_helper` (PyNaCl's SecretBox) under this salt key.
        let salt = Secret::new("sk-litellm-salt-for-import-tests");
        let sealed =
            "OeQlNCWvxQyJ6iJ8NaVIy/9K+OjM16ZVmvNtC+bk3x5BOcXg0ofpBp0hTTSR6WsP2zAILvQzeH9uNWzCOp4=";
        assert_eq!(
            open_litellm(&salt, sealed).unwrap(),
            "sk-upstream-secret-123"
        );
        assert!(matches!(
            open_litellm(&Secret::new("another-salt"), sealed),
            Err(CryptoError::Decrypt)
        ));
        assert!(matches!(
            open_litellm(&salt, "openai/gpt-4o"),
            Err(CryptoError::Malformed)
        ));
        let resealed = seal_litellm(&salt, "http://127.0.0.1:9/v1");
        assert_eq!(
            open_litellm(&salt, &resealed).unwrap(),
            "http://127.0.0.1:9/v1"
        );
    }
}
