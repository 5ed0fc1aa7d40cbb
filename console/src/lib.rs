//! The citysoc server and console (axum).
//!
//! What will live here (issues "Collector" and the triage/console issues): the signed intake
//! endpoint collectors forward batches to, the triage JSON API and web console for SOC analysts,
//! agency admins and incident responders, authentication, agency scoping, the SQLite triage store
//! and the hash-chained audit log.
