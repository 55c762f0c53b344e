//! Fault injection for the mirror (test support): the test hub is the real mirror with a [`FaultPlan`] in
//! [`MirrorOptions::faults`](crate::server::options::MirrorOptions::faults), controlled at runtime by the test.
//!
//! It is one layer around the whole app, added by the server's router builder only when a plan is given; no
//! route imports this module. The layer hands the plan's fixture repos and changed files to the routes as a
//! request extension (the Hub's `Overlay`), and reads where a file body starts (`BodyStart`) from the response
//! extensions to flip bytes at file offsets.
//!
//! Rules match requests whose URL path contains a pattern (`""` matches every request) and apply to the first
//! `times` matching requests (`None`: every one). Status faults ([`Fault::Status`]) apply to `GET` and `HEAD` and
//! answer without calling the server. [`Fault::IgnoreRange`] applies to `GET` requests that carry a `Range`
//! header. The other body faults apply to `GET` responses that have a body (`200`/`206`): a `302` to the CDN does
//! not consume them — target the `/cdn/` path for redirected LFS files.
//!
//! Every request is logged ([`FaultPlan::requests`]) with the bytes of body actually handed to the connection,
//! so a test can assert what was re-fetched. The log never holds a token: only whether `Authorization` was sent
//! and a short sha256 fingerprint of its value.
//!
//! Fixture repos that do not come from the disk (hostile file names, lying metadata) are added with
//! [`FaultPlan::add_virtual_repo`].

mod fixtures;
mod layer;
mod log;
mod plan;
mod shaper;

pub use fixtures::{VirtualFile, VirtualRepo};
pub(crate) use layer::wrap;
pub use log::{RequestRecord, fingerprint};
pub use plan::{Fault, FaultPlan, RetryAfter};
