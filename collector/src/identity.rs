//! The collector's identity: what enrollment returns (server, collector id, agency, key),
//! kept in a file only its owner can read, and the signed requests that use it besides batches
//! (key rotation, heartbeats).

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::forward::client::{endpoint_url, http_client, now_ms};
use crate::protocol::{self, EnrollRequest, EnrollResponse, Heartbeat, RotateResponse, Signed};
use crate::CollectorError;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An enrolled collector's identity, as stored in its key file.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The SOC server's base URL.
    pub server: String,
    /// The id the server issued.
    pub collector_id: String,
    /// The agency the collector belongs to (every event it sends is stamped with it).
    pub agency: String,
    /// The HMAC key, base64.
    pub key: String,
    /// CA certificate file that signs the server's certificate, when not a public CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key never reaches a log.
        f.debug_struct("Identity")
            .field("server", &self.server)
            .field("collector_id", &self.collector_id)
            .field("agency", &self.agency)
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Reads a key file.
    pub fn load(path: &Path) -> Result<Self, CollectorError> {
        let text = std::fs::read_to_string(path).map_err(|source| CollectorError::Identity {
            path: path.to_path_buf(),
            reason: source.to_string(),
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path).map_or(0, |metadata| metadata.permissions().mode());
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{:o}", mode & 0o777),
                    "the collector key file is readable by other users: anyone who reads it can send batches as this collector; chmod 600 it"
                );
            }
        }
        let identity: Identity =
            serde_json::from_str(&text).map_err(|error| CollectorError::Identity {
                path: path.to_path_buf(),
                reason: format!("not a collector key file: {error}"),
            })?;
        identity.key_bytes().map_err(|_| CollectorError::Identity {
            path: path.to_path_buf(),
            reason: "the key is not base64".into(),
        })?;
        Ok(identity)
    }

    /// Writes the key file atomically (temp file, fsync, rename), readable by its owner only.
    pub fn save(&self, path: &Path) -> Result<(), CollectorError> {
        let failed = |reason: String| CollectorError::Identity {
            path: path.to_path_buf(),
            reason,
        };
        let text = serde_json::to_vec_pretty(self).map_err(|error| failed(error.to_string()))?;
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|error| failed(error.to_string()))?;
        }
        // A name nobody can have prepared, opened only if it does not exist yet (no following
        // a symlink planted in a directory others can write to).
        let mut suffix = [0u8; 8];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut suffix)
            .map_err(|_| failed("the system random generator failed".into()))?;
        let suffix: String = suffix.iter().map(|byte| format!("{byte:02x}")).collect();
        let temporary = path.with_extension(format!("tmp-{suffix}"));
        let written = (|| {
            use std::io::Write;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options.open(&temporary)?;
            file.write_all(&text)?;
            file.sync_all()?;
            // A key replaced by root (`sudo citysoc collector rotate-key` without `-u`) stays
            // the service user's, or the service could not read it at its next start.
            #[cfg(unix)]
            if let Ok(old) = std::fs::metadata(path) {
                use std::os::unix::fs::MetadataExt;
                if let Err(error) =
                    std::os::unix::fs::fchown(&file, Some(old.uid()), Some(old.gid()))
                {
                    tracing::warn!(
                        path = %path.display(),
                        %error,
                        "the new key file keeps the current user as its owner, not the old file's"
                    );
                }
            }
            std::fs::rename(&temporary, path)
        })();
        if let Err(error) = written {
            let _ = std::fs::remove_file(&temporary);
            return Err(failed(error.to_string()));
        }
        Ok(())
    }

    /// The key's bytes.
    pub fn key_bytes(&self) -> Result<Vec<u8>, CollectorError> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.key)
            .map_err(|_| CollectorError::Protocol("the collector key is not base64".into()))
    }

    /// Asks the server for a new key and saves it to `path` before using it (the server keeps
    /// the old key valid until the new one is first used, so a lost answer is harmless).
    pub async fn rotate(&mut self, path: &Path) -> Result<(), CollectorError> {
        let answer = self
            .signed_post(protocol::ROTATE_PATH, b"{}".to_vec())
            .await?;
        let rotated: RotateResponse = serde_json::from_slice(&answer)
            .map_err(|error| CollectorError::Protocol(format!("rotation answer: {error}")))?;
        let mut next = self.clone();
        next.key = rotated.key;
        next.key_bytes()?;
        next.save(path)?;
        *self = next;
        Ok(())
    }

    /// Sends a heartbeat.
    pub async fn send_heartbeat(&self, heartbeat: &Heartbeat) -> Result<(), CollectorError> {
        let body = serde_json::to_vec(heartbeat)
            .map_err(|error| CollectorError::Protocol(format!("heartbeat: {error}")))?;
        self.signed_post(protocol::HEARTBEAT_PATH, body)
            .await
            .map(|_| ())
    }

    async fn signed_post(&self, path: &str, body: Vec<u8>) -> Result<Vec<u8>, CollectorError> {
        let client = http_client(self.ca_file.as_deref(), REQUEST_TIMEOUT)?;
        let url = endpoint_url(&self.server, path)?;
        let signed = Signed {
            collector: self.collector_id.clone(),
            sequence: 0,
            time_ms: now_ms(),
        };
        let key = self.key_bytes()?;
        let signature = protocol::sign(&key, path, &signed, &body);
        let head_signature = protocol::sign_head(&key, path, &signed, body.len() as u64);
        let response = client
            .post(url)
            .header(protocol::HEADER_COLLECTOR, &signed.collector)
            .header(protocol::HEADER_SEQUENCE, "0")
            .header(protocol::HEADER_TIME, signed.time_ms.to_string())
            .header(protocol::HEADER_SIGNATURE, signature)
            .header(protocol::HEADER_HEAD_SIGNATURE, head_signature)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|error| CollectorError::Protocol(format!("{}: {error}", self.server)))?;
        read_answer(response).await
    }
}

/// Exchanges a one-time enrollment token for an identity.
pub async fn enroll(
    server: &str,
    token: &str,
    name: &str,
    ca_file: Option<&Path>,
) -> Result<Identity, CollectorError> {
    let client = http_client(ca_file, REQUEST_TIMEOUT)?;
    let url = endpoint_url(server, protocol::ENROLL_PATH)?;
    let hostname = std::fs::read_to_string("/etc/hostname")
        .map(|text| text.trim().to_owned())
        .unwrap_or_default();
    let request = EnrollRequest {
        token: token.trim().to_owned(),
        name: if name.is_empty() {
            hostname.clone()
        } else {
            name.to_owned()
        },
        hostname,
        version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let body = serde_json::to_vec(&request)
        .map_err(|error| CollectorError::Protocol(format!("enrollment request: {error}")))?;
    let response = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|error| CollectorError::Protocol(format!("{server}: {error}")))?;
    let answer = read_answer(response).await?;
    let enrolled: EnrollResponse = serde_json::from_slice(&answer)
        .map_err(|error| CollectorError::Protocol(format!("enrollment answer: {error}")))?;
    let identity = Identity {
        server: server.trim_end_matches('/').to_owned(),
        collector_id: enrolled.collector_id,
        agency: enrolled.agency,
        key: enrolled.key,
        ca_file: ca_file.map(Path::to_path_buf),
    };
    identity.key_bytes()?;
    Ok(identity)
}

async fn read_answer(response: reqwest::Response) -> Result<Vec<u8>, CollectorError> {
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|error| CollectorError::Protocol(format!("reading the answer: {error}")))?;
    if status.is_success() {
        return Ok(body.to_vec());
    }
    let message = serde_json::from_slice::<protocol::Rejection>(&body)
        .map(|rejection| format!("{} ({})", rejection.message, rejection.reason))
        .unwrap_or_else(|_| String::from_utf8_lossy(&body).chars().take(300).collect());
    Err(CollectorError::Protocol(format!(
        "the server answered {status}: {message}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_identity() -> Identity {
        Identity {
            server: "https://soc.example".into(),
            collector_id: "c1".into(),
            agency: "quan-1".into(),
            key: base64::engine::general_purpose::STANDARD.encode([1u8; 32]),
            ca_file: None,
        }
    }

    #[test]
    fn key_files_are_private_and_round_trip() {
        let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
        let path = dir.path().join("etc/collector.key");
        let identity = sample_identity();
        identity
            .save(&path)
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(Identity::load(&path).ok(), Some(identity.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .map(|m| m.permissions().mode())
                .unwrap_or(0);
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!format!("{identity:?}").contains(&identity.key));
        std::fs::write(&path, "{}").unwrap_or_else(|error| panic!("{error}"));
        assert!(Identity::load(&path).is_err());
    }

    /// Replacing a key file keeps its owner: root rotating the key of a service that runs as
    /// its own user must not leave it a file it cannot read.
    #[cfg(unix)]
    #[test]
    fn a_replaced_key_file_keeps_its_owner() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
        let path = dir.path().join("collector.key");
        let identity = sample_identity();
        identity
            .save(&path)
            .unwrap_or_else(|error| panic!("{error}"));
        // As root (the case that matters) the file is given to `nobody` first; otherwise the
        // owner stays the current user either way.
        let _ = std::os::unix::fs::chown(&path, Some(65_534), Some(65_534));
        let owner = |path: &Path| {
            std::fs::metadata(path)
                .map(|metadata| (metadata.uid(), metadata.gid()))
                .unwrap_or_else(|error| panic!("{error}"))
        };
        let before = owner(&path);
        let mut next = identity.clone();
        next.key = base64::engine::general_purpose::STANDARD.encode([2u8; 32]);
        next.save(&path).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(owner(&path), before);
        assert_eq!(Identity::load(&path).ok(), Some(next));
    }

    /// A symlink planted where the old code put its temporary file (`collector.tmp`) is
    /// neither followed nor truncated, and no temporary file is left behind.
    #[cfg(unix)]
    #[test]
    fn saving_follows_no_planted_symlink_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|error| panic!("{error}"));
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap_or_else(|error| panic!("{error}"));
        let path = dir.path().join("collector.key");
        std::os::unix::fs::symlink(&victim, dir.path().join("collector.tmp"))
            .unwrap_or_else(|error| panic!("{error}"));
        let identity = sample_identity();
        identity
            .save(&path)
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap_or_default(),
            "precious"
        );
        assert_eq!(Identity::load(&path).ok(), Some(identity));
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|entry| entry.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        assert_eq!(names, ["collector.key", "collector.tmp", "victim"]);
    }
}
