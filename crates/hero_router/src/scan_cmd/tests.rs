use std::sync::Arc;

use super::*;
use crate::registry::table::Service;
use crate::registry::table::ServiceStatus;

/// A service directory with no sockets says why in the WHY column: none there, or the
/// directory could not be listed (the JSON's `error`), not "no *.sock files" for both.
#[test]
fn a_service_without_sockets_says_why() {
    let service = |name: &str, error: Option<&str>| {
        Arc::new(Service {
            name: name.into(),
            status: ServiceStatus::Unhealthy,
            sockets: Vec::new(),
            error: error.map(Into::into),
        })
    };
    let report = ScanReport {
        root: "/r".into(),
        services: vec![
            service("empty", None),
            service(
                "locked",
                Some("cannot list the directory: permission denied"),
            ),
        ],
        ignored: Vec::new(),
        reaped: Vec::new(),
        reaping: false,
    };
    let text = render_text(&report);
    let row = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{text}"))
            .to_owned()
    };
    assert!(row("empty").ends_with("no *.sock files"), "{text}");
    assert!(
        row("locked").ends_with("cannot list the directory: permission denied"),
        "{text}"
    );
}
