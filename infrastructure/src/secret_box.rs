//! Encryption at rest of secrets (provider credentials, OAuth tokens, webhook
//! URLs): XChaCha20-Poly1305 with a 32-byte key from configuration.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

const NONCE_LEN: usize = 24;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretBoxError {
    #[error("ciphertext is malformed")]
    Malformed,
    #[error("ciphertext does not decrypt with this key and context")]
    Undecryptable,
}

#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }

    /// `context` (e.g. the owning organization and record id) is bound to the
    /// ciphertext, so a secret copied to another record does not decrypt.
    pub fn seal(&self, plaintext: &str, context: &str) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encrypts any in-memory message");
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        STANDARD.encode(sealed)
    }

    pub fn open(&self, sealed: &str, context: &str) -> Result<String, SecretBoxError> {
        let bytes = STANDARD.decode(sealed).map_err(|_| SecretBoxError::Malformed)?;
        if bytes.len() <= NONCE_LEN {
            return Err(SecretBoxError::Malformed);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let plaintext = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SecretBoxError::Undecryptable)?;
        String::from_utf8(plaintext).map_err(|_| SecretBoxError::Malformed)
    }
}

impl application::secrets::SecretSealer for SecretBox {
    fn seal(&self, plaintext: &str, context: &str) -> String {
        SecretBox::seal(self, plaintext, context)
    }

    fn open(&self, sealed: &str, context: &str) -> Result<String, application::AppError> {
        SecretBox::open(self, sealed, context)
            .map_err(|e| application::AppError::internal("opening a stored secret", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_only_with_the_same_key_and_context() {
        let secret_box = SecretBox::new(&[7; 32]);
        let sealed = secret_box.seal("xoxb-secret", "org-1/slack-1");
        assert!(!sealed.contains("xoxb"));
        assert_eq!(secret_box.open(&sealed, "org-1/slack-1").unwrap(), "xoxb-secret");
        assert_eq!(
            secret_box.open(&sealed, "org-2/slack-1"),
            Err(SecretBoxError::Undecryptable)
        );
        assert_eq!(
            SecretBox::new(&[8; 32]).open(&sealed, "org-1/slack-1"),
            Err(SecretBoxError::Undecryptable)
        );
        assert_eq!(secret_box.open("!!", "x"), Err(SecretBoxError::Malformed));
        assert_ne!(sealed, secret_box.seal("xoxb-secret", "org-1/slack-1"), "nonces repeat");
    }
}
