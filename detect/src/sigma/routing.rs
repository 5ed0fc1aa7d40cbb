//! Logsource routing: a rule only sees events whose logsource it names.
//!
//! Rules are partitioned by the (product, category, service) they declare. An event with
//! logsource (p, c, s) is evaluated by the partitions whose every named dimension equals the
//! event's: at most eight keys, looked up in a hash map, so a Windows process-creation event
//! never reaches the Linux, web server or cloud rules. Sigma's umbrella category
//! `registry_event` also covers our `registry_add`/`registry_set`/`registry_delete`/
//! `registry_rename` events, as SigmaHQ's own config does.

use citysoc_collector::LogSource;

/// The logsource a rule declares, lower-cased, as a partition key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionKey {
    /// Product, e.g. `windows`.
    pub product: Option<String>,
    /// Category, e.g. `process_creation`.
    pub category: Option<String>,
    /// Service, e.g. `sysmon`.
    pub service: Option<String>,
}

impl PartitionKey {
    /// The key of a rule's logsource.
    pub fn of_rule(product: Option<&str>, category: Option<&str>, service: Option<&str>) -> Self {
        let lower = |value: Option<&str>| value.map(str::to_ascii_lowercase);
        PartitionKey {
            product: lower(product),
            category: lower(category),
            service: lower(service),
        }
    }

    /// Every key whose rules apply to an event with `logsource`.
    pub fn candidates_for(logsource: &LogSource) -> Vec<PartitionKey> {
        let lower = |value: Option<&str>| value.map(str::to_ascii_lowercase);
        let product = lower(logsource.product.as_deref());
        let service = lower(logsource.service.as_deref());
        let mut categories = vec![lower(logsource.category.as_deref())];
        if categories[0]
            .as_deref()
            .is_some_and(|category| category.starts_with("registry_"))
        {
            categories.push(Some("registry_event".to_owned()));
        }
        let mut keys = Vec::with_capacity(16);
        for product in [None, product.clone()]
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
        {
            for service in [None, service.clone()]
                .into_iter()
                .collect::<std::collections::BTreeSet<_>>()
            {
                let mut category_choices: Vec<Option<String>> = vec![None];
                category_choices.extend(categories.iter().flatten().cloned().map(Some));
                for category in category_choices {
                    keys.push(PartitionKey {
                        product: product.clone(),
                        category,
                        service: service.clone(),
                    });
                }
            }
        }
        keys.sort();
        keys.dedup();
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_cover_every_subset_and_the_registry_umbrella() {
        let keys = PartitionKey::candidates_for(&LogSource::new(
            Some("windows"),
            Some("registry_set"),
            Some("sysmon"),
        ));
        assert!(keys.contains(&PartitionKey::of_rule(
            Some("windows"),
            Some("registry_event"),
            None
        )));
        assert!(keys.contains(&PartitionKey::of_rule(Some("windows"), None, None)));
        assert!(keys.contains(&PartitionKey::of_rule(None, Some("registry_set"), None)));
        assert!(keys.contains(&PartitionKey::default()));
        assert_eq!(keys.len(), 12);
        let empty = PartitionKey::candidates_for(&LogSource::default());
        assert_eq!(empty, vec![PartitionKey::default()]);
    }
}
