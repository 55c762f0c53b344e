//! The Hugging Face Hub client: model info, the (paginated) tree listing and file bytes through `resolve`.
//!
//! Everything a server says is validated before use: commits must be 40-hex, git sha1 40-hex, sha256 64-hex,
//! file names pass [`validate_repo_path`](crate::engine::store::validate_repo_path), sizes must agree between the listing and the response headers.
//! Redirects are followed by hand so the `Authorization` header only ever goes to the endpoint's own host, and a
//! plain-`http` endpoint on a non-loopback host gets no token unless `downloads.allow_token_over_http` is set.
//! Error messages never contain the token or a URL's query string (signed CDN URLs).
//!
//! The pieces: [`client`] (the client, its requests and failed statuses), [`api`] (the hub's endpoints),
//! [`listing`] (validated listings and file headers), [`redirect`] (the redirect and token rules), [`failure`]
//! (failures classified for retries, errors without secrets) and [`headers`] (reading response headers).

pub mod api;
pub mod client;
pub mod failure;
pub mod headers;
pub mod listing;
pub mod redirect;

pub use self::api::{FileBody, FileResponse};
pub use self::client::HubClient;
pub use self::failure::{HttpFailure, Subject};
pub use self::listing::{FileHead, ModelInfo, RemoteFile};
