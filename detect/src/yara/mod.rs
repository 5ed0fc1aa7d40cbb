//! YARA scanning of event payloads with yara-x.
//!
//! The city's rules (`rules/yara/*.yar`) are compiled once into a [`YaraRuleSet`] that every
//! worker shares through an `Arc`; each worker creates one [`YaraScanner`] (yara-x scanners
//! are not shared between threads and borrow their rules) and calls
//! [`YaraScanner::scan_event`] per event. What is scanned is configurable ([`YaraConfig`]):
//! the raw record, command lines, messages, URLs, HTTP bodies, file contents that agents
//! attach, and the payloads hidden in them (PowerShell `-EncodedCommand` arguments, other
//! long base64 runs, percent-encoded URLs), each cut at a size limit, under a scan timeout.
//! Every matching rule gives one [`Alert`](crate::Alert) per event.
//!
//! yara-x has a fixed cost per scan that dwarfs the scanning of a log-sized target, so the
//! targets of a batch of events are first scanned together as one buffer (the prefilter);
//! only targets that a pattern match touched are looked at again, which gives exactly the
//! alerts of scanning every target alone (`prefilter` explains when that holds and keeps the
//! rules for which it might not out of the batch). For rules that match exactly when one of
//! their patterns does, a match lying inside one target settles that target's alert without a
//! second scan (`batch`); other touched targets are scanned again alone.

mod batch;
mod decode;
mod details;
mod pieces;
mod prefilter;
mod rules;
mod scanner;

pub use rules::{RuleLoadProblem, YaraRuleInfo, YaraRuleSet};
pub use scanner::{YaraConfig, YaraScanner, YaraStats};

#[cfg(test)]
mod tests;
