//! The citysoc server (and, in later issues, the console).
//!
//! Collectors talk to it with the wire protocol of [`citysoc_collector::protocol`]: they
//! enroll with a one-time token ([`registry`] issues an id and a key), then post signed
//! zstd NDJSON batches to the intake, heartbeats and key rotations. Batches enter as HTTP
//! bodies and leave as events in the `index` crate's [`TantivyStore`](citysoc_index::TantivyStore)
//! (and alerts in `DATA/alerts.ndjson` when detection is on); the answer is sent only once
//! they are durable. [`Server`] wires it up: routes, TLS, a commit timer and a graceful
//! shutdown; `/metrics` counts every refusal by reason.
//!
//! Still to come here: the triage JSON API and web console, authentication of people, the
//! triage store and the audit log.

// Only the allocator crate may hold `unsafe` (allocator/: a global allocator is an unsafe
// trait over C); no other crate needs any.
#![forbid(unsafe_code)]

mod app;
mod batch_places;
mod control;
mod dedup;
mod detection;
mod enroll;
mod error;
mod intake;
pub mod metrics;
pub mod registry;
mod rejection;
mod server;
mod signed;
mod tls;

pub use batch_places::{default_max_places, DEFAULT_PLACE_WAIT};
pub use detection::Detection;
pub use error::ConsoleError;
pub use metrics::Metrics;
pub use registry::{CollectorRecord, Registry};
pub use server::{shutdown_signal, Server, ServerConfig, HEALTH_PATH, METRICS_PATH};
pub use tls::{server_config, TlsFiles};
