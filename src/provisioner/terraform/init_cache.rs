//! The init cache: `.terraform` dirs and lock files kept per configuration, so builds of
//! one template version run `terraform init` once between them.

use std::path::{Path, PathBuf};

use std::os::unix::fs::PermissionsExt;

use sha2::{Digest, Sha256};

use super::env::fingerprint;
use super::{RunOutput, Terraform, TerraformError, OUTPUT_PREFIX, PLAN_FILE};
use crate::provisioner::untrusted_fs;

/// Whether `init_cached` could skip `terraform init`.
#[derive(Debug, Clone)]
pub enum InitOutcome {
    CacheHit,
    Ran(RunOutput),
}

/// `.terraform` dirs and lock files by key, so builds of one template version skip init.
#[derive(Debug, Clone)]
pub struct InitCache {
    root: PathBuf,
}

/// Files that are build state, not configuration; they never affect the cache key.
fn is_state_name(name: &str) -> bool {
    name == ".terraform"
        || name.contains(".tfstate")
        || name == PLAN_FILE
        || name.starts_with(OUTPUT_PREFIX)
}

impl InitCache {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        InitCache { root: root.into() }
    }

    /// A key for the configuration in `dir` as rendered (a `.tf.tera` may render module
    /// sources or provider versions differently per workspace), the terraform binary
    /// (an upgrade in place changes its fingerprint) and the provider build.
    pub fn key_for_dir(dir: &Path, terraform: &Terraform) -> Result<String, TerraformError> {
        let mut hasher = Sha256::new();
        hasher.update(fingerprint(terraform.binary()).as_bytes());
        hasher.update([0]);
        hasher.update(terraform.env().provider_fingerprint().as_bytes());
        hash_tree(dir, Path::new(""), &mut hasher)?;
        Ok(hex::encode(&hasher.finalize()[..16]))
    }

    fn entry(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// On a hit, makes `dir` initialized from the entry under `key` with no terraform
    /// process: `.terraform` becomes a symlink to the cached one and the lock file is
    /// copied. False on a miss.
    pub(super) fn restore(&self, key: &str, dir: &Path) -> Result<bool, TerraformError> {
        let entry = self.entry(key);
        if !entry.join("complete").exists() {
            return Ok(false);
        }
        let cached_dot = entry.join("dot-terraform");
        let dot = dir.join(".terraform");
        // An archive made by hand may carry its own .terraform; the cache replaces it.
        if dot.is_dir() && !dot.is_symlink() {
            std::fs::remove_dir_all(&dot).map_err(TerraformError::io("removing", &dot))?;
        }
        if cached_dot.exists() {
            std::os::unix::fs::symlink(&cached_dot, &dot).map_err(TerraformError::io(
                "linking the cached .terraform into",
                dir,
            ))?;
        }
        let cached_lock = entry.join("lock.hcl");
        if cached_lock.exists() {
            let lock = dir.join(".terraform.lock.hcl");
            std::fs::copy(&cached_lock, &lock).map_err(TerraformError::io("writing", &lock))?;
        }
        Ok(true)
    }

    /// At start, before any build runs (a live publish has its staging dir here too):
    /// removes half-made entries a server that died mid-publish left, and opens entries
    /// published before terraform ran as its own user (they were private to the server)
    /// to the user that now runs it.
    pub fn tidy(&self) {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(".staging-") {
                let _ = std::fs::remove_dir_all(entry.path());
            } else {
                let _ =
                    std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o755));
            }
        }
    }

    /// Stores a fresh init of `dir` under `key`, via a temp dir renamed into place so
    /// readers never see half an entry.
    pub(super) fn publish(&self, key: &str, dir: &Path) -> Result<(), TerraformError> {
        let (root, entry) = (&self.root, self.entry(key));
        std::fs::create_dir_all(root).map_err(TerraformError::io("creating", root))?;
        let staging = tempfile::Builder::new()
            .prefix(".staging-")
            .tempdir_in(root)
            .map_err(TerraformError::io("creating a staging dir in", root))?;
        // What init left in `dir` belongs to terraform's user when it is not the
        // server's: read without following links, copied into files the server owns
        // and that user can read (never write: the cache is shared by every build).
        let dot = dir.join(".terraform");
        if dot.symlink_metadata().is_ok() {
            untrusted_fs::copy_tree(&dot, &staging.path().join("dot-terraform"))
                .map_err(TerraformError::io("copying", &dot))?;
        }
        let lock = dir.join(".terraform.lock.hcl");
        if let Some(bytes) =
            untrusted_fs::read(dir, ".terraform.lock.hcl", untrusted_fs::MAX_READ_BYTES)
                .map_err(TerraformError::io("reading", &lock))?
        {
            std::fs::write(staging.path().join("lock.hcl"), bytes)
                .map_err(TerraformError::io("copying", &lock))?;
        }
        std::fs::set_permissions(staging.path(), std::fs::Permissions::from_mode(0o755)).map_err(
            TerraformError::io("opening to terraform's user", staging.path()),
        )?;
        std::fs::write(staging.path().join("complete"), b"")
            .map_err(TerraformError::io("writing", staging.path()))?;
        let staged = staging.keep();
        if std::fs::rename(&staged, entry).is_err() {
            // Another build published the same key first; theirs is as good as ours.
            let _ = std::fs::remove_dir_all(&staged);
        }
        Ok(())
    }
}

fn hash_tree(dir: &Path, rel: &Path, hasher: &mut Sha256) -> Result<(), TerraformError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(TerraformError::io("reading", dir))?
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        if is_state_name(&name.to_string_lossy()) {
            continue;
        }
        let path = entry.path();
        let rel = rel.join(&name);
        let ft = entry
            .file_type()
            .map_err(TerraformError::io("reading", &path))?;
        hasher.update(rel.as_os_str().as_encoded_bytes());
        hasher.update([0]);
        if ft.is_dir() {
            hash_tree(&path, &rel, hasher)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&path).map_err(TerraformError::io("reading", &path))?;
            hasher.update(target.as_os_str().as_encoded_bytes());
        } else {
            let data = std::fs::read(&path).map_err(TerraformError::io("reading", &path))?;
            hasher.update((data.len() as u64).to_le_bytes());
            hasher.update(&data);
        }
    }
    Ok(())
}
