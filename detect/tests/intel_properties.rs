//! Matching and loading never panic, whatever the event values and list files hold.

use std::path::Path;

use citysoc_collector::parse::new_event;
use citysoc_collector::ParseContext;
use citysoc_detect::intel::{parse_list, IntelSet, LoadOptions, MatchOptions, INTEL_FIELDS};
use proptest::prelude::*;

const LIST: &str = "type,value\ncidr,10.0.0.0/8\nip,2001:db8::1\ncidr,::/0\ndomain,evil.vn\nurl,http://evil.vn/x\nsha256,3f1c2a9e0b5d4e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f\nmd5,0123456789abcdef0123456789abcdef\n";

fn set() -> IntelSet {
    let path = Path::new("props.csv").to_path_buf();
    let list = parse_list(&path, LIST, &LoadOptions::default());
    IntelSet::build([(path, list)])
}

/// Text that looks like the values the matcher cares about, mixed with anything.
fn value_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9a-fA-F:.\\[\\]%/ ]{0,60}",
        "[a-zA-Z0-9.:/?#@=_,;%-]{0,80}",
        "(https?|ftp|x)://[a-zA-Z0-9.:@\\[\\]-]{0,30}(/[^ ]{0,20})?",
        "((MD5|SHA1|SHA256|IMPHASH)=[0-9A-Fa-f]{0,70},?){0,4}",
        "([a-z]{0,5}\\.){0,70}vn\\.?",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn matching_never_panics(values in proptest::collection::vec(value_strategy(), 1..12), extra_name in "[a-zA-Z.-]{1,12}") {
        let set = set();
        let mut event = new_event(b"x", &ParseContext::new("test"), 1);
        for (index, value) in values.iter().enumerate() {
            let (name, _) = INTEL_FIELDS[(index * 7) % INTEL_FIELDS.len()];
            event.fields.insert(name.to_owned().into(), value.clone().into());
        }
        event.fields.insert(extra_name.into(), serde_json::json!([values.first(), {"nested": values.last()}]));
        event.fields.insert("dns".into(), serde_json::json!({"question": {"name": values.last()}, "answers": values}));
        event.core.source_ip = values.first().map(|value| value.as_str().into());
        event.core.url_original = values.last().cloned();
        for options in [MatchOptions::default(), MatchOptions { scan_all_fields_for_addresses: false }] {
            let alerts = set.alerts(&event, &options);
            // One alert per indicator at most.
            let mut indicators: Vec<_> = alerts.iter().map(|alert| alert.details.get("indicator").cloned()).collect();
            indicators.sort_by_key(|value| value.as_ref().map(ToString::to_string));
            indicators.dedup();
            prop_assert_eq!(indicators.len(), alerts.len());
        }
    }

    #[test]
    fn loading_never_panics(text in any::<String>(), csv_like in "([a-z0-9|\",./:#\n -]{0,30}\n){0,8}") {
        for name in ["a.csv", "a.json"] {
            for body in [&text, &csv_like, &format!("type,value\n{csv_like}")] {
                let list = parse_list(Path::new(name), body, &LoadOptions::default());
                for problem in &list.problems {
                    prop_assert!(!problem.reason.is_empty());
                }
            }
        }
    }
}
