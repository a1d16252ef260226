//! Parsing `/{service}/{kind}/{rest…}` without ever letting a request escape its socket.
//!
//! The path is checked segment by segment *before* decoding is trusted: an encoded `/` or NUL,
//! a `.` or `..` segment (plain or encoded), or invalid UTF-8 after decoding is a bad path (400).
//! The rest of the path is forwarded exactly as the client sent it (still encoded).

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

use crate::registry::names::valid_service_name;

/// A routed request target, borrowed from the request (decoded only if it was encoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route<'a> {
    /// The service name.
    pub service: Cow<'a, str>,
    /// The socket kind segment as given (`rpc`, `admin`, a web name, …).
    pub kind: Cow<'a, str>,
    /// The upstream path, still encoded: `/{rest…}` (`/` when there is no rest).
    pub path: &'a str,
    /// The query, without `?`.
    pub query: Option<&'a str>,
}

/// Why a path was rejected (always a 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PathError {
    /// `.`/`..` segment, encoded slash, NUL, bad encoding.
    #[error("bad path: {0}")]
    Bad(&'static str),
    /// The service segment is not a valid service name.
    #[error("bad service name")]
    BadService,
    /// The kind segment is not a valid socket kind.
    #[error("bad socket kind")]
    BadKind,
}

/// Parses a raw request path and query. `Ok(None)` if the path has fewer than two segments
/// (it is not a route).
pub(crate) fn parse<'a>(
    path: &'a str,
    query: Option<&'a str>,
) -> Result<Option<Route<'a>>, PathError> {
    let Some(stripped) = path.strip_prefix('/') else {
        return Err(PathError::Bad("path must start with /"));
    };
    for seg in stripped.split('/') {
        check_segment(seg)?;
    }
    let mut parts = stripped.splitn(3, '/');
    let (Some(service_raw), Some(kind_raw)) = (parts.next(), parts.next()) else {
        return Ok(None);
    };
    if service_raw.is_empty() || kind_raw.is_empty() {
        return Ok(None);
    }
    let service = service(service_raw)?;
    let kind = decode(kind_raw)?;
    if !kind
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(PathError::BadKind);
    }
    // The rest keeps its leading slash: `/svc/rpc/a/b` → `/a/b`, `/svc/rpc` → `/`.
    let skip = 1 + service_raw.len() + 1 + kind_raw.len();
    let rest = &path[skip..];
    Ok(Some(Route {
        service,
        kind,
        path: if rest.is_empty() { "/" } else { rest },
        query,
    }))
}

/// A path segment that names a service, decoded: a bad path if it cannot be one.
pub(crate) fn service_segment(seg: &str) -> Result<String, PathError> {
    check_segment(seg)?;
    service(seg).map(Cow::into_owned)
}

fn service(raw: &str) -> Result<Cow<'_, str>, PathError> {
    let service = decode(raw)?;
    if !valid_service_name(&service) {
        return Err(PathError::BadService);
    }
    Ok(service)
}

fn check_segment(seg: &str) -> Result<(), PathError> {
    if seg.contains('\0') || seg.contains('\\') {
        return Err(if seg.contains('\0') {
            PathError::Bad("NUL in path")
        } else {
            PathError::Bad("encoded or back slash in path")
        });
    }
    if !seg.contains('%') {
        // Nothing encoded: the common case, checked without decoding.
        return match seg {
            "." | ".." => Err(PathError::Bad("dot segment in path")),
            _ => Ok(()),
        };
    }
    let lower = seg.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") {
        return Err(PathError::Bad("encoded or back slash in path"));
    }
    if lower.contains("%00") {
        return Err(PathError::Bad("NUL in path"));
    }
    let decoded = decode(seg)?;
    if decoded == "." || decoded == ".." {
        return Err(PathError::Bad("dot segment in path"));
    }
    Ok(())
}

fn decode(seg: &str) -> Result<Cow<'_, str>, PathError> {
    percent_decode_str(seg)
        .decode_utf8()
        .map_err(|_| PathError::Bad("invalid UTF-8 in path"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route<'a>(path: &'a str, query: Option<&'a str>) -> Route<'a> {
        parse(path, query).unwrap().unwrap()
    }

    /// The request target the router writes upstream: the route's path and query, joined as
    /// `http1::write_upstream_head` joins them.
    fn target(r: &Route<'_>) -> String {
        match r.query {
            Some(q) => format!("{}?{q}", r.path),
            None => r.path.to_owned(),
        }
    }

    #[test]
    fn routes_strip_the_prefix_and_keep_the_query() {
        let r = route("/svc/rpc/a/b%20c/", Some("x=1&y=%2F"));
        assert_eq!((r.service.as_ref(), r.kind.as_ref()), ("svc", "rpc"));
        assert!(
            matches!(r.service, Cow::Borrowed(_)),
            "nothing to decode, nothing copied"
        );
        assert_eq!(target(&r), "/a/b%20c/?x=1&y=%2F");
        assert_eq!(target(&route("/svc/admin", None)), "/");
        assert_eq!(target(&route("/svc/admin/", None)), "/");
        assert_eq!(route("/svc/docs/index.html", None).kind, "docs");
        assert_eq!(route("/sv%63/rpc/x", None).service, "svc");
    }

    #[test]
    fn non_routes() {
        assert_eq!(parse("/", None), Ok(None));
        assert_eq!(parse("/svc", None), Ok(None));
        assert_eq!(parse("/svc/", None), Ok(None));
    }

    #[test]
    fn hostile_paths_are_rejected() {
        for p in [
            "/svc/rpc/../x",
            "/svc/rpc/%2e%2e/x",
            "/svc/rpc/%2E%2e",
            "/svc/rpc/.",
            "/../etc/passwd",
            "/svc/rpc/a%2fb",
            "/svc/rpc/a%2Fb",
            "/svc/rpc/a%00b",
            "/svc/rpc/a\0b",
            "/svc/rpc/%ff",
            "/svc/rpc/a%5cb",
            "/svc/rpc/a\\b",
            "/svc/%2e%2e/x",
        ] {
            assert!(matches!(parse(p, None), Err(PathError::Bad(_))), "{p}");
        }
        assert_eq!(parse("/bad.name/rpc/x", None), Err(PathError::BadService));
        assert_eq!(parse("/_x/rpc/x", None), Err(PathError::BadService));
        assert_eq!(parse("/svc/r.p/x", None), Err(PathError::BadKind));
        assert_eq!(
            parse("no-slash", None),
            Err(PathError::Bad("path must start with /"))
        );
    }

    /// Random paths never panic, and whatever is accepted is safe to forward. `make fuzz`
    /// runs 1,000,000 cases (`HERO_FUZZ_CASES`).
    #[test]
    fn parser_never_panics_and_never_lets_dots_through() {
        let (cases, seed, mut rng) = crate::test_util::fuzz_setup();
        let pieces = [
            "/", ".", "..", "%2e", "%2E", "%2f", "%00", "%", "%ff", "svc", "rpc", "a", "-", "_",
            "?", "\0", "é", "%c3%a9", "\\",
        ];
        for case in 0..cases {
            let path: String = (0..rng.usize(1..12))
                .map(|_| pieces[rng.usize(..pieces.len())])
                .collect();
            let result = std::panic::catch_unwind(|| parse(&path, None));
            let Ok(result) = result else {
                panic!("seed {seed} case {case}: panic on {path:?}")
            };
            if let Ok(Some(r)) = result {
                let rest = percent_decode_str(&target(&r))
                    .decode_utf8_lossy()
                    .into_owned();
                assert!(
                    !rest.split('/').any(|s| s == ".." || s == "."),
                    "seed {seed}: {path:?} -> {rest:?}"
                );
                assert!(valid_service_name(&r.service));
            }
        }
        eprintln!("path parser: {cases} random cases without a panic (seed {seed})");
    }
}
