//! Provider keys at rest: XChaCha20-Poly1305 under `AIPIPE_MASTER_KEY`, a fresh
//! random 192-bit nonce per value, and the tenant and provider as associated
//! data, so a sealed key copied onto another tenant's row fails to open
//! instead of leaking across tenants. Also the few random values the control
//! plane makes (virtual keys, ids, dev secrets).

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::error::Error;

const NONCE_LEN: usize = 24;
/// Sealed into the database once, so a wrong master key is refused at start
/// instead of surfacing later as undecryptable provider keys.
pub const CHECK_PLAINTEXT: &str = "aipipe master key check v1";

pub struct Cipher {
    aead: XChaCha20Poly1305,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(..)")
    }
}

fn aad(tenant: &str, provider: &str) -> Vec<u8> {
    format!("aipipe/provider-key/v1\0{tenant}\0{provider}").into_bytes()
}

impl Cipher {
    pub fn new(master_key: &[u8; 32]) -> Self {
        Self {
            aead: XChaCha20Poly1305::new(master_key.into()),
        }
    }

    /// `nonce || ciphertext+tag`, bound to (tenant, provider).
    pub fn seal(&self, tenant: &str, provider: &str, plaintext: &str) -> Result<Vec<u8>, Error> {
        let nonce_bytes: [u8; NONCE_LEN] = random_bytes()?;
        let nonce = XNonce::from(nonce_bytes);
        let aad = aad(tenant, provider);
        let sealed = self
            .aead
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| Error::Internal("provider key encryption failed".into()))?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    pub fn open(&self, tenant: &str, provider: &str, blob: &[u8]) -> Result<String, Error> {
        let fail = || {
            Error::Internal(format!(
                "the stored {provider} key of tenant {tenant} does not decrypt (AIPIPE_MASTER_KEY changed, or the row was altered)"
            ))
        };
        if blob.len() < NONCE_LEN {
            return Err(fail());
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let nonce_bytes: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| fail())?;
        let aad = aad(tenant, provider);
        let plain = self
            .aead
            .decrypt(
                &XNonce::from(nonce_bytes),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| fail())?;
        String::from_utf8(plain).map_err(|_| fail())
    }
}

pub fn random_bytes<const N: usize>() -> Result<[u8; N], Error> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| Error::internal("OS randomness", e))?;
    Ok(b)
}

/// A new virtual key: 32 random bytes, url-safe base64, prefixed `aip_`.
pub fn new_virtual_key() -> Result<String, Error> {
    let bytes: [u8; 32] = random_bytes()?;
    Ok(format!(
        "aip_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// A short random id (virtual key ids): not secret, just unique.
pub fn new_id(prefix: &str) -> Result<String, Error> {
    let bytes: [u8; 9] = random_bytes()?;
    Ok(format!("{prefix}{}", hex::encode(bytes)))
}

/// A random secret in hex (dev-mode admin secret and internal token).
pub fn new_secret() -> Result<String, Error> {
    Ok(hex::encode(random_bytes::<32>()?))
}

/// Parses `AIPIPE_MASTER_KEY`: exactly 64 hex digits.
pub fn parse_master_key(text: &str) -> Result<[u8; 32], String> {
    let text = text.trim();
    let bytes = hex::decode(text).map_err(|_| {
        "AIPIPE_MASTER_KEY must be 64 hex digits (32 bytes); generate one with `openssl rand -hex 32`".to_owned()
    })?;
    bytes.try_into().map_err(|b: Vec<u8>| {
        format!(
            "AIPIPE_MASTER_KEY must be 64 hex digits (32 bytes), got {} bytes; generate one with `openssl rand -hex 32`",
            b.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_keys_open_only_for_their_tenant_and_provider() {
        let c = Cipher::new(&[7u8; 32]);
        let a = c.seal("acme", "openai", "sk-secret").unwrap();
        let b = c.seal("acme", "openai", "sk-secret").unwrap();
        assert_ne!(a, b, "fresh nonce per value");
        assert_eq!(c.open("acme", "openai", &a).unwrap(), "sk-secret");
        assert!(c.open("other", "openai", &a).is_err());
        assert!(c.open("acme", "anthropic", &a).is_err());
        assert!(Cipher::new(&[8u8; 32]).open("acme", "openai", &a).is_err());
        assert!(!a.windows(9).any(|w| w == b"sk-secret"));
    }

    #[test]
    fn master_key_must_be_32_hex_bytes() {
        assert!(parse_master_key(&"ab".repeat(32)).is_ok());
        assert!(parse_master_key(&"ab".repeat(31)).is_err());
        assert!(parse_master_key(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn virtual_keys_are_prefixed_and_random() {
        let a = new_virtual_key().unwrap();
        assert!(a.starts_with("aip_") && a.len() == 4 + 43, "{a}");
        assert_ne!(a, new_virtual_key().unwrap());
    }
}
