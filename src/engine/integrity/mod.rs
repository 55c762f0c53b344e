//! Integrity: hashing, safetensors structure, per-model verification (full and quick), metadata generation,
//! reports, storage maintenance (cleanup, move).

pub mod generate;
pub mod hash;
pub mod maintenance;
pub mod repair;
pub mod safetensors;
pub mod verify;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Map `f` over `items` on at most `threads` scoped threads; results in input order.
pub(crate) fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let workers = threads.max(1).min(items.len());
    if workers <= 1 {
        return items.iter().map(f).collect();
    }
    let out: Vec<Mutex<Option<R>>> = (0..items.len()).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = f(item);
                    *out[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
                }
            });
        }
    });
    out.into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .expect("every item mapped")
        })
        .collect()
}

/// Re-downloads named files of a model through the download engine (resume, verification), then returns.
/// Implemented by the download engine; the health monitor and `--repair-corrupted` use it.
pub trait Repairer: Send + Sync {
    fn repair<'a>(
        &'a self,
        repo: &'a crate::engine::store::RepoId,
        files: &'a [String],
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = crate::engine::Result<()>> + Send + 'a>>;
}
