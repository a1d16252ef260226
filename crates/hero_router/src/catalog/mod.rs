//! The service catalog: what the router knows about each service's OpenRPC document.
//!
//! - [`validate`]: checks a document against the official OpenRPC meta-schema (1.3 or 1.4),
//!   offline, with bounded, human-readable errors.

pub mod validate;
