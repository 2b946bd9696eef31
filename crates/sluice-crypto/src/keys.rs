//! The platform's two secrets: the Ed25519 signing key and the HMAC key for
//! pseudonyms. They live in a key directory (mode 0700, files 0600) that is
//! kept apart from the data directory; a data-dir copy alone cannot link
//! pseudonyms to people or forge releases.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ring::rand::SecureRandom;
use ring::signature::{self, KeyPair};

use crate::Pseudonymizer;

const SIGNING_FILE: &str = "signing.ed25519.pk8";
const PSEUDONYM_FILE: &str = "pseudonym.hmac";
const PUBLIC_FILE: &str = "signing.ed25519.pub";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key directory {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("key file {0} is malformed")]
    Malformed(PathBuf),
    #[error("key directory {0} is readable by others; set mode 0700")]
    Permissions(PathBuf),
}

pub struct PlatformKeys {
    signing: signature::Ed25519KeyPair,
    pseudonym_key: [u8; 32],
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_owned(),
        source,
    }
}

fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

impl PlatformKeys {
    /// Loads the keys from `dir`, creating them on first use.
    pub fn load_or_create(dir: &Path) -> Result<Self, KeyError> {
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io(dir))?;
        }
        let mode = fs::metadata(dir).map_err(io(dir))?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions(dir.to_owned()));
        }
        let rng = ring::rand::SystemRandom::new();
        let signing_path = dir.join(SIGNING_FILE);
        if !signing_path.exists() {
            let pkcs8 = signature::Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| KeyError::Malformed(signing_path.clone()))?;
            write_secret(&signing_path, pkcs8.as_ref())?;
        }
        let pseudonym_path = dir.join(PSEUDONYM_FILE);
        if !pseudonym_path.exists() {
            let mut key = [0u8; 32];
            rng.fill(&mut key).expect("system random source");
            write_secret(&pseudonym_path, &key)?;
        }
        let pkcs8 = fs::read(&signing_path).map_err(io(&signing_path))?;
        let signing = signature::Ed25519KeyPair::from_pkcs8(&pkcs8)
            .map_err(|_| KeyError::Malformed(signing_path.clone()))?;
        let pseudonym_key: [u8; 32] = fs::read(&pseudonym_path)
            .map_err(io(&pseudonym_path))?
            .try_into()
            .map_err(|_| KeyError::Malformed(pseudonym_path.clone()))?;
        let keys = PlatformKeys {
            signing,
            pseudonym_key,
        };
        // The public key is published beside the secrets for convenience.
        let public_path = dir.join(PUBLIC_FILE);
        fs::write(&public_path, keys.public_key_hex()).map_err(io(&public_path))?;
        Ok(keys)
    }

    pub fn public_key(&self) -> &[u8] {
        self.signing.public_key().as_ref()
    }
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.public_key())
    }
    pub fn key_id(&self) -> String {
        crate::key_id_of(self.public_key())
    }
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.signing.sign(message).as_ref().to_vec()
    }
    /// The pseudonym key in hex, for handing to an ingest sandbox on its stdin.
    pub fn pseudonym_key_hex(&self) -> String {
        hex::encode(self.pseudonym_key)
    }
    pub fn pseudonymizer(&self) -> Pseudonymizer {
        Pseudonymizer::new(&self.pseudonym_key)
    }
}
