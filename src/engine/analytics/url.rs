//! Which analytics database a URL names: SQLite (`sqlite:///path`, the default file in the cache directory) or
//! PostgreSQL (`postgresql://…`), and the same URL with its password redacted for every output.

use std::path::{Path, PathBuf};

use crate::engine::config::Config;
use crate::engine::config::redact::mask_url_password;
use crate::engine::error::{EmaError, Result};

/// The backend behind a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgresql",
        }
    }
}

/// A checked analytics database location.
#[derive(Clone, PartialEq, Eq)]
pub struct DbUrl {
    backend: Backend,
    /// What sqlx connects to (may hold a password: never print it).
    connect: String,
    /// The SQLite file, for SQLite.
    path: Option<PathBuf>,
}

impl std::fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DbUrl({})", self.redacted())
    }
}

impl DbUrl {
    /// `sqlite:///abs/path`, `sqlite://rel/path`, `postgresql://…` or `postgres://…`.
    pub fn parse(url: &str) -> Result<Self> {
        let url = url.trim();
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            let rest = rest.split(['?', '#']).next().unwrap_or("");
            if rest.is_empty() {
                return Err(EmaError::Config(
                    "the analytics URL `sqlite://` names no file; write sqlite:///absolute/path/analytics.db".into(),
                ));
            }
            return Ok(Self::sqlite_file(Path::new(rest)));
        }
        if url.starts_with("postgresql://") || url.starts_with("postgres://") {
            let parsed = url::Url::parse(url).map_err(|e| {
                EmaError::Config(format!(
                    "the analytics URL {} is not a valid URL ({e}); write postgresql://user:password@host:5432/db",
                    redact(url)
                ))
            })?;
            if parsed.host_str().unwrap_or("").is_empty() {
                return Err(EmaError::Config(format!(
                    "the analytics URL {} names no host; write postgresql://user:password@host:5432/db",
                    redact(url)
                )));
            }
            if parsed.query_pairs().any(|(k, v)| {
                k == "sslmode" && matches!(&*v, "require" | "verify-ca" | "verify-full")
            }) {
                return Err(EmaError::Config(format!(
                    "the analytics URL {} asks for TLS, which this build of ema does not include; connect over \
                     loopback or a trusted network with sslmode=disable (or prefer)",
                    redact(url)
                )));
            }
            return Ok(DbUrl {
                backend: Backend::Postgres,
                connect: url.to_string(),
                path: None,
            });
        }
        Err(EmaError::Config(format!(
            "the analytics URL `{}` is neither sqlite:///path nor postgresql://…; use one of those (or leave \
             analytics.db_url unset for analytics.db in the cache directory)",
            redact(url)
        )))
    }

    /// A SQLite file.
    pub fn sqlite_file(path: &Path) -> Self {
        let enc = percent_encoding::utf8_percent_encode(
            &path.to_string_lossy(),
            percent_encoding::NON_ALPHANUMERIC,
        )
        .to_string()
        .replace("%2F", "/")
        .replace("%2E", ".")
        .replace("%2D", "-")
        .replace("%5F", "_");
        DbUrl {
            backend: Backend::Sqlite,
            connect: format!("sqlite://{enc}?mode=rwc"),
            path: Some(path.to_path_buf()),
        }
    }

    /// The URL a command gave (`--db-url`), else `analytics.db_url`, else `analytics.db` in the cache directory.
    pub fn resolve(flag: Option<&str>, config: &Config) -> Result<Self> {
        match flag.or(config.analytics.db_url.as_deref()) {
            Some(u) => Self::parse(u),
            None => Ok(Self::sqlite_file(
                &config.storage.cache_dir().join("analytics.db"),
            )),
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn sqlite_path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The URL sqlx connects with. Holds the password: never print it.
    pub(super) fn connect_url(&self) -> &str {
        &self.connect
    }

    /// For people: the SQLite path, or the PostgreSQL URL with its password replaced.
    pub fn redacted(&self) -> String {
        match &self.path {
            Some(p) => format!("sqlite://{}", p.display()),
            None => redact(&self.connect),
        }
    }

    /// `text` (e.g. a driver's error) with this URL's password removed wherever it appears.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.replace(&self.connect, &self.redacted());
        if let Ok(u) = url::Url::parse(&self.connect) {
            if let Some(pw) = u.password()
                && !pw.is_empty()
            {
                out = out.replace(pw, "<redacted>");
            }
            for (k, v) in u.query_pairs() {
                if k == "password" && !v.is_empty() {
                    out = out.replace(&*v, "<redacted>");
                }
            }
        }
        out
    }
}

/// A URL with its userinfo password and any `password=` query parameter replaced.
pub fn redact(url: &str) -> String {
    let masked = mask_url_password(url);
    match masked.split_once('?') {
        Some((head, query)) => {
            let q: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=<redacted>"),
                    _ => kv.to_string(),
                })
                .collect();
            format!("{head}?{}", q.join("&"))
        }
        None => masked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_redact() {
        let u = DbUrl::parse("sqlite:///tmp/x y/a.db").unwrap();
        assert_eq!(u.backend(), Backend::Sqlite);
        assert_eq!(u.sqlite_path().unwrap(), Path::new("/tmp/x y/a.db"));
        assert_eq!(u.connect_url(), "sqlite:///tmp/x%20y/a.db?mode=rwc");
        let p = DbUrl::parse("postgresql://ema:s3cret@127.0.0.1:5432/db?password=other").unwrap();
        assert_eq!(p.backend(), Backend::Postgres);
        let shown = p.redacted();
        assert!(
            !shown.contains("s3cret") && !shown.contains("other"),
            "{shown}"
        );
        assert!(shown.contains("127.0.0.1:5432/db"), "{shown}");
        assert_eq!(
            p.scrub("failed for s3cret and other"),
            "failed for <redacted> and <redacted>"
        );
        for bad in [
            "mysql://x",
            "sqlite://",
            "postgresql://:pw@/db",
            "http://h/db",
        ] {
            let e = DbUrl::parse(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
            assert!(!e.to_string().contains("pw@"), "{e}");
        }
        let tls = DbUrl::parse("postgresql://u:pw@h/db?sslmode=require").unwrap_err();
        assert!(tls.to_string().contains("sslmode=disable"), "{tls}");
        assert!(!tls.to_string().contains("pw@"), "{tls}");
    }
}
