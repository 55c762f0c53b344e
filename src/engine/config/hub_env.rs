//! The Hugging Face environment ema reads beside its configuration file: the hub endpoint, offline mode, the token
//! and where it came from, and the shared Hugging Face cache directories.

use std::path::PathBuf;

/// Hugging Face environment the field expects.
#[derive(Debug, Clone)]
pub struct HubEnv {
    pub endpoint: String,
    /// The token, if any. Never print it; use [`HubEnv::token_source`] to say where it came from.
    pub token: Option<String>,
    pub token_source: Option<String>,
    pub offline: bool,
}

impl HubEnv {
    pub fn from_env() -> Self {
        let endpoint = std::env::var("HF_ENDPOINT")
            .ok()
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().trim_end_matches('/').to_string())
            .unwrap_or_else(|| "https://huggingface.co".to_string());
        let offline = std::env::var("HF_HUB_OFFLINE")
            .map(|v| {
                matches!(
                    v.trim().to_ascii_lowercase().as_str(),
                    "1" | "true" | "yes" | "on"
                )
            })
            .unwrap_or(false);
        let (token, token_source) = if let Some(t) = env_nonempty("HF_TOKEN") {
            (Some(t), Some("HF_TOKEN".to_string()))
        } else if let Some(t) = env_nonempty("HUGGING_FACE_HUB_TOKEN") {
            (Some(t), Some("HUGGING_FACE_HUB_TOKEN".to_string()))
        } else {
            let path = token_path();
            match std::fs::read_to_string(&path) {
                Ok(s) if !s.trim().is_empty() => {
                    (Some(s.trim().to_string()), Some(path.display().to_string()))
                }
                _ => (None, None),
            }
        };
        HubEnv {
            endpoint,
            token,
            token_source,
            offline,
        }
    }
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// `$HF_TOKEN_PATH`, else `$HF_HOME/token`, else `$XDG_CACHE_HOME/huggingface/token`, else
/// `~/.cache/huggingface/token`.
pub fn token_path() -> PathBuf {
    if let Some(p) = env_nonempty("HF_TOKEN_PATH") {
        return PathBuf::from(p);
    }
    hf_home().join("token")
}

/// The shared Hugging Face cache: `$HF_HUB_CACHE`, else `$HF_HOME/hub`.
pub fn hf_hub_cache() -> PathBuf {
    match env_nonempty("HF_HUB_CACHE") {
        Some(p) => PathBuf::from(p),
        None => hf_home().join("hub"),
    }
}

pub fn hf_home() -> PathBuf {
    if let Some(p) = env_nonempty("HF_HOME") {
        return PathBuf::from(p);
    }
    if let Some(p) = env_nonempty("XDG_CACHE_HOME") {
        return PathBuf::from(p).join("huggingface");
    }
    directories::BaseDirs::new()
        .map(|b| b.home_dir().join(".cache").join("huggingface"))
        .unwrap_or_else(|| PathBuf::from(".cache/huggingface"))
}
