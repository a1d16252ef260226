use std::collections::BTreeMap;
use std::sync::Arc;

use super::gone;
use crate::registry::table::{Service, ServiceStatus};

fn service(name: &str) -> Arc<Service> {
    Arc::new(Service {
        name: name.to_owned(),
        status: ServiceStatus::Unhealthy,
        sockets: Vec::new(),
        error: None,
    })
}

/// `gone` against its definition (an entry whose service the table does not have), over
/// random name sets: equal, disjoint, one inside the other, names that are prefixes of others.
#[test]
fn gone_is_every_entry_the_table_does_not_have() {
    let mut rng = fastrand::Rng::with_seed(20);
    let alphabet = [
        "a", "ab", "b", "svc", "svc-1", "svc-10", "svc-2", "z", "é", "A",
    ];
    for _ in 0..2_000 {
        let mut pick = || {
            let mut names: Vec<String> = (0..rng.usize(0..12))
                .map(|_| {
                    let n = rng.usize(1..3);
                    (0..n)
                        .map(|_| alphabet[rng.usize(..alphabet.len())])
                        .collect()
                })
                .collect();
            names.sort();
            names.dedup();
            names
        };
        let (entry_names, table_names) = (pick(), pick());
        let entries: BTreeMap<Arc<str>, ()> = entry_names
            .iter()
            .map(|n| (Arc::from(n.as_str()), ()))
            .collect();
        let services: Vec<Arc<Service>> = table_names.iter().map(|n| service(n)).collect();
        let want: Vec<Arc<str>> = entries
            .keys()
            .filter(|n| !table_names.iter().any(|t| t.as_str() == &***n))
            .cloned()
            .collect();
        assert_eq!(
            gone(&entries, &services),
            want,
            "entries {entry_names:?}, table {table_names:?}"
        );
    }
}
