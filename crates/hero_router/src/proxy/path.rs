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
    // One pass over the bytes finds the first two slashes and shows whether anything is
    // encoded (or a NUL or backslash) or is a dot. The common path has neither: then no
    // segment needs a check, nor decoding.
    let bytes = stripped.as_bytes();
    let (mut seen, mut slashes, mut found) = (0u8, [bytes.len(); 2], 0);
    for (i, b) in bytes.iter().enumerate() {
        let class = CLASS[usize::from(*b)];
        if class == 0 {
            continue;
        }
        seen |= class;
        if class == SLASH && found < 2 {
            slashes[found] = i;
            found += 1;
        }
    }
    let plain = seen & SPECIAL == 0;
    if !plain {
        for seg in stripped.split('/') {
            check_segment(seg)?;
        }
    } else if seen & DOT != 0 {
        for seg in stripped.split('/') {
            check_plain_segment(seg)?;
        }
    }
    // `/{service}/{kind}…`: cut at the first two slashes (bytes, so char boundaries).
    if found == 0 {
        return Ok(None);
    }
    let service_raw = &stripped[..slashes[0]];
    let kind_raw = &stripped[slashes[0] + 1..slashes[1]];
    if service_raw.is_empty() || kind_raw.is_empty() {
        return Ok(None);
    }
    let service = if plain {
        if !valid_service_name(service_raw) {
            return Err(PathError::BadService);
        }
        Cow::Borrowed(service_raw)
    } else {
        service(service_raw)?
    };
    let kind = if plain {
        Cow::Borrowed(kind_raw)
    } else {
        decode(kind_raw)?
    };
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

/// The bytes [`parse`] looks for, by class.
const SLASH: u8 = 1;
const DOT: u8 = 2;
/// `%`, `\\` and NUL: the path needs the careful check, segment by segment.
const SPECIAL: u8 = 4;
const CLASS: [u8; 256] = {
    let mut class = [0; 256];
    class[b'/' as usize] = SLASH;
    class[b'.' as usize] = DOT;
    class[b'%' as usize] = SPECIAL;
    class[b'\\' as usize] = SPECIAL;
    class[0] = SPECIAL;
    class
};

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
        return check_plain_segment(seg);
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

/// [`check_segment`] for a segment with nothing encoded and no NUL or backslash.
fn check_plain_segment(seg: &str) -> Result<(), PathError> {
    match seg {
        "." | ".." => Err(PathError::Bad("dot segment in path")),
        _ => Ok(()),
    }
}

fn decode(seg: &str) -> Result<Cow<'_, str>, PathError> {
    percent_decode_str(seg)
        .decode_utf8()
        .map_err(|_| PathError::Bad("invalid UTF-8 in path"))
}

#[cfg(test)]
mod tests;
