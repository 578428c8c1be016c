//! Encryption at rest: what moat stores that must stay unreadable to whoever reads its
//! database or its backups (today, logged prompts and completions).
//!
//! Envelope encryption: each value is sealed with AES-256-GCM under a *data key*; data keys are
//! random, kept in the `data_keys` table, and stored only wrapped (sealed) by the *master key*,
//! which never touches the database: it comes from the environment or a file. A stolen
//! database or backup is therefore useless without the master key, and changing the master key
//! (`moat secrets rotate`) re-wraps a handful of data keys and re-encrypts the data under a
//! fresh one, without ever holding plaintext outside memory.
//!
//! Every sealed value is bound to where it is stored (its associated data names the table and
//! row), so a ciphertext copied onto another row fails to open instead of being shown there.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Bytes of an AES-GCM nonce, stored in front of each ciphertext.
const NONCE_BYTES: usize = 12;

/// Why a key could not be read or a value could not be opened. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// A master key's text is not 32 bytes in base64 or hex.
    #[error("an encryption key must be 32 random bytes, written in base64 (44 characters) or hex (64 characters)")]
    BadKeyText,
    /// Authentication failed: the wrong key, or the value was altered or moved.
    #[error("the value could not be decrypted: the wrong key, or it was altered")]
    Unreadable,
    /// A data key is wrapped by a master key moat was not given.
    #[error(
        "data key {data_key} is wrapped by master key {master_key}, which is neither [encryption] key nor one of \
         previous_keys"
    )]
    UnknownMasterKey {
        /// The data key.
        data_key: String,
        /// The fingerprint of the master key it needs.
        master_key: String,
    },
}

/// A master key: the one secret that unlocks everything moat stores encrypted.
#[derive(Clone)]
pub struct MasterKey {
    /// A fingerprint that names the key in the database without revealing it.
    id: String,
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey").field("id", &self.id).finish_non_exhaustive()
    }
}

impl MasterKey {
    /// Reads a key as an operator writes it: 32 bytes in base64 (standard or URL-safe, padded
    /// or not) or in hex. Surrounding whitespace is ignored.
    pub fn from_text(text: &str) -> Result<MasterKey, SealError> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[i * 2..i * 2 + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| SealError::BadKeyText)?
        } else {
            let unpadded = text.trim_end_matches('=');
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(unpadded)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(unpadded))
                .map_err(|_| SealError::BadKeyText)?
        };
        let key: [u8; 32] = bytes.try_into().map_err(|_| SealError::BadKeyText)?;
        let digest = Sha256::new().chain_update(b"moat master key id\0").chain_update(key).finalize();
        let id = format!("mk_{}", hex(&digest[..6]));
        Ok(MasterKey { id, cipher: Aes256Gcm::new(&Key::<Aes256Gcm>::from(key)) })
    }

    /// A new random key, in base64: what `moat secrets generate-key` prints.
    pub fn generate_text() -> String {
        let key = Aes256Gcm::generate_key(OsRng);
        base64::engine::general_purpose::STANDARD.encode(key)
    }

    /// The key's fingerprint (`mk_` and 12 hex digits), stored beside each data key it wraps.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The master key in use and the ones it replaced (still able to unwrap data keys until
/// `moat secrets rotate` re-wraps them).
#[derive(Debug, Clone)]
pub struct MasterKeys {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

impl MasterKeys {
    /// The current key, and previous ones that may still wrap stored data keys.
    pub fn new(current: MasterKey, previous: Vec<MasterKey>) -> MasterKeys {
        MasterKeys { current, previous }
    }

    /// The key new data keys are wrapped with.
    pub fn current(&self) -> &MasterKey {
        &self.current
    }

    /// How many previous keys are still configured.
    pub fn previous_count(&self) -> usize {
        self.previous.len()
    }

    fn by_id(&self, id: &str) -> Option<&MasterKey> {
        std::iter::once(&self.current).chain(&self.previous).find(|key| key.id == id)
    }

    /// Wraps a new data key's bytes under the current master key.
    pub(crate) fn wrap(&self, data_key: &DataKey) -> Vec<u8> {
        seal_with(&self.current.cipher, &wrap_context(&data_key.id), &data_key.bytes)
    }

    /// Unwraps the data key `id`, stored wrapped by the master key `master_key_id`.
    pub(crate) fn unwrap(&self, id: &str, master_key_id: &str, wrapped: &[u8]) -> Result<DataKey, SealError> {
        let master = self.by_id(master_key_id).ok_or_else(|| SealError::UnknownMasterKey {
            data_key: id.to_owned(),
            master_key: master_key_id.to_owned(),
        })?;
        let bytes = open_with(&master.cipher, &wrap_context(id), wrapped)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| SealError::Unreadable)?;
        Ok(DataKey::from_bytes(id.to_owned(), bytes))
    }
}

/// A data key: seals and opens stored values.
#[derive(Clone)]
pub struct DataKey {
    id: String,
    bytes: [u8; 32],
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey").field("id", &self.id).finish_non_exhaustive()
    }
}

impl DataKey {
    /// A new random data key.
    pub(crate) fn generate() -> DataKey {
        let id = format!("dk_{}", hex(&Aes256Gcm::generate_nonce(OsRng)[..8]));
        DataKey::from_bytes(id, Aes256Gcm::generate_key(OsRng).into())
    }

    fn from_bytes(id: String, bytes: [u8; 32]) -> DataKey {
        DataKey { id, cipher: Aes256Gcm::new(&Key::<Aes256Gcm>::from(bytes)), bytes }
    }

    /// The key's id, stored beside every value it seals.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Encrypts `plaintext` for the place named by `context` (table and row).
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Vec<u8> {
        seal_with(&self.cipher, context.as_bytes(), plaintext)
    }

    /// Decrypts a value sealed for `context`.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        open_with(&self.cipher, context.as_bytes(), sealed)
    }
}

fn wrap_context(data_key_id: &str) -> Vec<u8> {
    format!("moat data key {data_key_id}").into_bytes()
}

fn seal_with(cipher: &Aes256Gcm, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let nonce = Aes256Gcm::generate_nonce(OsRng);
    // Encryption fails only for inputs of more than 64 GiB, which moat never seals.
    let ciphertext = cipher.encrypt(&nonce, Payload { msg: plaintext, aad }).unwrap_or_default();
    let mut sealed = Vec::with_capacity(NONCE_BYTES + ciphertext.len());
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&ciphertext);
    sealed
}

fn open_with(cipher: &Aes256Gcm, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    if sealed.len() < NONCE_BYTES {
        return Err(SealError::Unreadable);
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
    cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad }).map_err(|_| SealError::Unreadable)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> MasterKey {
        MasterKey::from_text(text).expect("a valid key")
    }

    #[test]
    fn keys_are_read_from_base64_or_hex_and_named_by_fingerprint() {
        let b64 = MasterKey::generate_text();
        assert_eq!(b64.len(), 44);
        let bytes = base64::engine::general_purpose::STANDARD.decode(&b64).expect("base64");
        let as_hex = hex(&bytes);
        assert_eq!(key(&b64).id(), key(&as_hex).id());
        assert_eq!(key(&format!("  {b64}\n")).id(), key(&b64).id());
        assert_ne!(key(&b64).id(), key(&MasterKey::generate_text()).id());
        assert!(key(&b64).id().starts_with("mk_"));
        for bad in ["", "short", &b64[..40], &format!("{as_hex}00"), "zz".repeat(32).as_str()] {
            assert_eq!(MasterKey::from_text(bad).err(), Some(SealError::BadKeyText), "{bad}");
        }
    }

    #[test]
    fn debug_output_never_shows_key_material() {
        let text = MasterKey::generate_text();
        let master = key(&text);
        let data = DataKey::generate();
        let shown = format!("{master:?} {data:?}");
        assert!(shown.contains(master.id()) && shown.contains(data.id()), "{shown}");
        assert!(!shown.contains(&text) && !shown.contains(&hex(&data.bytes)), "{shown}");
    }

    #[test]
    fn a_sealed_value_opens_only_with_its_key_in_its_place() {
        let data = DataKey::generate();
        let sealed = data.seal("prompt_logs:req_1", b"my prompt");
        assert!(!sealed.windows(9).any(|w| w == b"my prompt"));
        assert_eq!(data.open("prompt_logs:req_1", &sealed).as_deref(), Ok(&b"my prompt"[..]));
        assert_eq!(data.open("prompt_logs:req_2", &sealed), Err(SealError::Unreadable));
        assert_eq!(DataKey::generate().open("prompt_logs:req_1", &sealed), Err(SealError::Unreadable));
        let mut altered = sealed.clone();
        if let Some(last) = altered.last_mut() {
            *last ^= 1;
        }
        assert_eq!(data.open("prompt_logs:req_1", &altered), Err(SealError::Unreadable));
        assert_eq!(data.open("prompt_logs:req_1", &sealed[..5]), Err(SealError::Unreadable));
        assert_ne!(data.seal("prompt_logs:req_1", b"my prompt"), sealed, "each seal draws a fresh nonce");
    }

    #[test]
    fn data_keys_unwrap_under_the_master_key_that_wrapped_them() {
        let old = key(&MasterKey::generate_text());
        let new = key(&MasterKey::generate_text());
        let data = DataKey::generate();
        let wrapped = MasterKeys::new(old.clone(), vec![]).wrap(&data);
        let rotated = MasterKeys::new(new.clone(), vec![old.clone()]);
        let unwrapped = rotated.unwrap(data.id(), old.id(), &wrapped).expect("the previous key still unwraps");
        assert_eq!(unwrapped.open("x", &data.seal("x", b"v")).as_deref(), Ok(&b"v"[..]));
        let forgot = MasterKeys::new(new.clone(), vec![]);
        assert!(matches!(forgot.unwrap(data.id(), old.id(), &wrapped), Err(SealError::UnknownMasterKey { .. })));
        // A wrapped key moved under another data key's id does not unwrap.
        assert_eq!(rotated.unwrap("dk_other", old.id(), &wrapped).err(), Some(SealError::Unreadable));
    }
}
