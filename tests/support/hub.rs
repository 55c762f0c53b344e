//! The test hub: the in-process mirror (`ema::server::mirror`) serving a store on loopback with a fault plan,
//! optionally with a "CDN" host on 127.0.0.2.

use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use ema::server::faults::FaultPlan;
use ema::server::mirror::{Mirror, MirrorHandle};
use ema::server::options::MirrorOptions;

/// A running mirror: its main host on 127.0.0.1, its CDN host on 127.0.0.2 (when started with one), and the
/// fault plan that shapes its answers and logs every request.
pub struct Hub {
    pub mirror: Mirror,
    pub main: MirrorHandle,
    cdn: Option<MirrorHandle>,
    pub plan: Arc<FaultPlan>,
}

impl Hub {
    /// Serve the store at `root`; with `with_cdn`, LFS files redirect to the CDN host. `tweak` adjusts the options
    /// (the fault plan and the CDN are already set).
    pub async fn start(root: &Path, with_cdn: bool, tweak: impl FnOnce(&mut MirrorOptions)) -> Hub {
        let cdn_l = match with_cdn {
            true => Some(tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap()),
            false => None,
        };
        let main_l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let plan = FaultPlan::new();
        let mut opts = MirrorOptions {
            cdn_base: cdn_l
                .as_ref()
                .map(|l| format!("http://{}", l.local_addr().unwrap())),
            faults: Some(plan.clone()),
            ..MirrorOptions::default()
        };
        tweak(&mut opts);
        let mirror = Mirror::load(root, opts).await.unwrap();
        let main = mirror.serve(main_l).unwrap();
        let cdn = cdn_l.map(|l| mirror.serve(l).unwrap());
        Hub {
            mirror,
            main,
            cdn,
            plan,
        }
    }

    /// The main host's URL: the value for `HF_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        self.main.url()
    }

    /// The URL of `path` on the main host.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.main.url(), path)
    }

    /// The CDN host (the hub must have been started with one).
    pub fn cdn(&self) -> &MirrorHandle {
        self.cdn.as_ref().expect("a hub started with a CDN")
    }

    /// Stop accepting and let in-flight requests finish.
    pub async fn shutdown(self) {
        self.main.shutdown().await;
        if let Some(cdn) = self.cdn {
            cdn.shutdown().await;
        }
    }
}

/// A hub with a runtime of its own, for tests that are not async (the engine driven with `block_on`, or the
/// `ema` binary as a child process). Shut down when dropped.
pub struct BlockingHub {
    pub rt: tokio::runtime::Runtime,
    hub: Option<Hub>,
}

impl BlockingHub {
    /// [`Hub::start`] on a new two-thread runtime.
    pub fn start(
        root: &Path,
        with_cdn: bool,
        tweak: impl FnOnce(&mut MirrorOptions),
    ) -> BlockingHub {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let hub = rt.block_on(Hub::start(root, with_cdn, tweak));
        BlockingHub { rt, hub: Some(hub) }
    }
}

impl Deref for BlockingHub {
    type Target = Hub;
    fn deref(&self) -> &Hub {
        self.hub.as_ref().unwrap()
    }
}

impl Drop for BlockingHub {
    fn drop(&mut self) {
        if let Some(h) = self.hub.take() {
            self.rt.block_on(h.shutdown());
        }
    }
}
