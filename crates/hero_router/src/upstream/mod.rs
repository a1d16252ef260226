//! The router's side of a service socket: the one client every request to a service goes
//! through, whoever makes it (forwarding, method routing, the catalog, hero_proc, the CLI).
//!
//! - [`connect`]: connecting to a socket (a full backlog is waited out), and [`SendError`],
//!   what can go wrong talking to one;
//! - [`Pool`]: idle connections by socket instance, the per-service in-flight limit, and
//!   [`Pool::send`], one whole request and its buffered answer under the connection rules;
//! - [`call`]: a JSON-RPC call on top, whose [`CallError`] says whether the service answered
//!   an error or the router got no answer.
//!
//! The bytes are [`crate::http1`]'s and [`crate::jsonrpc`]'s; this module does the I/O.

mod call;
mod connect;
mod pool;

pub(crate) use call::{
    CallError, CallOptions, ServiceError, call, call_once, not_a_reply, reply, send_once,
};
pub(crate) use connect::SendError;
pub(crate) use pool::{
    Answer, Budget, HeadError, IDLE_RACE, IDLE_TIMEOUT, Inflight, Interim, Key, Pool,
    SWEEP_INTERVAL, UpConn, read_final_head,
};
