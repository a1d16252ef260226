//! Traffic you can see (docs in the README's "Logs and traffic"): what each request was and
//! how it went.
//!
//! - [`RequestId`]: the `X-Request-Id` every request gets (kept from a trusted caller, else
//!   made here), sent to the service, returned on the answer, in error bodies and the log.
//! - [`Trace`]: the W3C trace context; the router is one span of the request's trace.
//! - [`AccessLog`]: one line per finished request, written off the connection threads.
//! - [`Traffic`]: per-service rolling counters and latency histograms of fixed size
//!   (`router.traffic`, `GET /api/traffic`, the dashboard's charts).
//!
//! The connection driver (`serve::conn`) owns the per-request bookkeeping; this module only
//! holds the pieces, so that nothing here imports the fronts.

mod id;
mod log;
mod stats;
#[cfg(test)]
mod tests;
mod trace;

pub(crate) use id::RequestId;
pub(crate) use log::{
    AccessLog, AccessLogFormat, GATHER, MAX_METHODS, Record, RouteLabel, dropped, label,
};
pub(crate) use stats::{Class, Traffic};
pub(crate) use trace::Trace;
