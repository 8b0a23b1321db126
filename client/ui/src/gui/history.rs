//! The computer IDs this user connected to lately, newest first, kept in the
//! user's config folder (`%APPDATA%\ThinTelework-<AppId>\` on Windows,
//! `$XDG_CONFIG_HOME` or `~/.config/ThinTelework-<AppId>/` elsewhere) as
//! `client_history.json`, written atomically.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::GuiError;

/// How many IDs are kept.
pub const MAX_ENTRIES: usize = 10;

const FILE_NAME: &str = "client_history.json";

#[derive(Debug, Default, Serialize, Deserialize)]
struct FileFormat {
    recent: Vec<String>,
}

/// Recent computer IDs.
#[derive(Debug, Clone, Default)]
pub struct History {
    ids: Vec<String>,
    path: Option<PathBuf>,
}

/// The user's config folder of this brand, if the environment names one.
pub fn user_config_dir() -> Option<PathBuf> {
    thin_tunnel::device::user_config_dir()
}

impl History {
    /// A history that is not saved anywhere.
    pub fn in_memory(ids: &[&str]) -> Self {
        Self { ids: ids.iter().map(|s| s.to_string()).collect(), path: None }
    }

    /// Loads the history of `dir` (empty when the file is missing or unreadable).
    pub fn load(dir: &Path) -> Self {
        let path = dir.join(FILE_NAME);
        let ids = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<FileFormat>(&b).ok())
            .map(|f| f.recent)
            .unwrap_or_default()
            .into_iter()
            .filter(|id| thin_protocol::pcid::normalize(id).is_ok())
            .take(MAX_ENTRIES)
            .collect();
        Self { ids, path: Some(path) }
    }

    /// The user's history ([`user_config_dir`]), or an unsaved one.
    pub fn load_user() -> Self {
        match user_config_dir() {
            Some(d) => Self::load(&d),
            None => Self::default(),
        }
    }

    /// The IDs, newest first.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// Puts `pcid` first (once, compared without case) and saves.
    pub fn remember(&mut self, pcid: &str) -> Result<(), GuiError> {
        let pcid = pcid.trim();
        self.ids.retain(|x| !x.eq_ignore_ascii_case(pcid));
        self.ids.insert(0, pcid.to_string());
        self.ids.truncate(MAX_ENTRIES);
        self.save()
    }

    fn save(&self) -> Result<(), GuiError> {
        let Some(path) = &self.path else { return Ok(()) };
        let text = serde_json::to_vec_pretty(&FileFormat { recent: self.ids.clone() })?;
        Ok(thin_tunnel::settings::write_secret(path, &text)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_first_without_duplicates_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = History::load(dir.path());
        assert!(h.ids().is_empty());
        h.remember("desk-01").unwrap();
        h.remember("lab").unwrap();
        h.remember("DESK-01").unwrap();
        assert_eq!(h.ids(), ["DESK-01", "lab"]);
        for i in 0..20 {
            h.remember(&format!("pc{i}")).unwrap();
        }
        assert_eq!(h.ids().len(), MAX_ENTRIES);
        assert_eq!(h.ids()[0], "pc19");
        let again = History::load(dir.path());
        assert_eq!(again.ids(), h.ids(), "saved and loaded");
        assert!(!dir.path().join("client_history.tmp").exists(), "written through a temp file and renamed");
    }

    #[test]
    fn a_broken_file_is_an_empty_history() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), b"{not json").unwrap();
        assert!(History::load(dir.path()).ids().is_empty());
        std::fs::write(dir.path().join(FILE_NAME), br#"{"recent":["ok-1","bad id","ok-2"]}"#).unwrap();
        assert_eq!(History::load(dir.path()).ids(), ["ok-1", "ok-2"]);
    }
}
