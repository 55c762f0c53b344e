//! Disk space: the pre-flight check against the bytes a download still needs (plus the operator's reserve), what
//! counts as a full disk, and the `1.5 GiB`-style sizes its messages use.

use crate::engine::error::{EmaError, Result};

/// Is this I/O error "no space left on device" (or a quota)?
pub(crate) fn is_enospc(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
        || e.kind() == std::io::ErrorKind::StorageFull
}

/// Extra bytes to keep free beyond what a download needs: `EMA_DISK_RESERVE_MB` (default 0). Operators use it to
/// keep headroom on a shared volume; it also lets tests exercise the pre-flight honestly.
pub fn disk_reserve_bytes() -> u64 {
    std::env::var("EMA_DISK_RESERVE_MB")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|mb| (mb * 1024.0 * 1024.0) as u64)
        .unwrap_or(0)
}

/// Fail before starting when the volume holding the partials (the same volume as the model folder) has less free
/// space than `needed` plus the configured reserve.
pub fn check_disk(dir: &std::path::Path, needed: u64) -> Result<()> {
    let free =
        fs4::available_space(dir).map_err(|e| EmaError::io("cannot read free space of", dir, e))?;
    let reserve = disk_reserve_bytes();
    let required = needed.saturating_add(reserve);
    if free < required {
        let reserve_note = if reserve > 0 {
            format!(
                " (including EMA_DISK_RESERVE_MB = {} kept free)",
                human_bytes(reserve)
            )
        } else {
            String::new()
        };
        return Err(EmaError::DiskSpace(format!(
            "not enough disk space at {}: {} required{reserve_note}, {} free; free some space, choose another \
             --models-dir, or narrow the download with --include/--exclude",
            dir.display(),
            human_bytes(required),
            human_bytes(free)
        )));
    }
    Ok(())
}

/// `1.5 GiB`-style sizes.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_check_names_required_free_and_path() {
        let d = tempfile::tempdir().unwrap();
        let e = check_disk(d.path(), u64::MAX / 2).unwrap_err();
        let m = e.to_string();
        assert!(matches!(e, EmaError::DiskSpace(_)));
        assert!(
            m.contains("required")
                && m.contains("free")
                && m.contains(&d.path().display().to_string()),
            "{m}"
        );
        check_disk(d.path(), 1).unwrap();
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(5), "5 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
