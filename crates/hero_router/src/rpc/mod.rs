//! The JSON-RPC front end (docs/json-rpc.md).
//!
//! The envelope is ours ([`codec`]); the router's own methods are a jsonrpsee [`RpcModule`]
//! called in-process; `<service>.<method>` calls are forwarded to `<root>/<service>/rpc.sock`
//! through the lean upstream [`Pool`] with id and params passed through byte for byte.
//!
//! Methods: `router.services`, `router.service`, `router.scan`, `router.health`,
//! `router.spec`, `router.methods`, `router.traffic`, `rpc.discover`.
//!
//! Router errors (docs/json-rpc.md#error-codes): `-32001` no such service, `-32002` no live
//! rpc socket (or busy for the whole upstream timeout), `-32003` upstream timeout, `-32004`
//! upstream answered something that is not JSON-RPC, `-32005` the service has no spec. Each
//! carries `data: {"service": S}`. A service's own error passes as it came, whatever its code.

mod openrpc;

pub(crate) use openrpc::{manifest, openrpc};

use std::sync::Arc;

use futures_util::future::join_all;
use jsonrpsee::core::traits::ToRpcParams;
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::{MethodsError, RpcModule};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::http1::OwnRequest;
use crate::json::raw;
use crate::jsonrpc::{
    self as codec, BAD_UPSTREAM, Body as RpcBody, BodyError, Call, Entry, NO_SPEC, NO_SUCH_SERVICE,
    NOT_LIVE,
};
use crate::registry::names::OWN_SERVICE;
use crate::registry::state::SocketState;
use crate::shared::Shared;
use crate::traffic;
use crate::upstream::Key;
use crate::upstream::{self, CallError, CallOptions, ServiceError};

/// Whom a `POST /rpc` request was for (its metrics label).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CallTarget {
    /// The router's own methods, errors the router answered, or calls to several services.
    Router,
    /// Every call went to this service (one in the table).
    Service(String),
}

/// What a `POST /rpc` request carries besides its body: its ids, which routed calls pass on
/// to the service (`X-Request-Id`, `traceparent`) and router errors name (`request_id` in
/// their `data`).
#[derive(Debug, Default)]
pub(crate) struct CallMeta<'a> {
    /// The request's id.
    pub request_id: &'a str,
    /// The `traceparent` a service gets (the router's span).
    pub traceparent: Option<&'a str>,
    /// Collect the body's method names (for the access log).
    pub methods: bool,
}

// === impl CallMeta ===

impl CallMeta<'_> {
    /// The headers a routed call passes on to the service: the request's id and its
    /// `traceparent`.
    fn headers(&self) -> Vec<(&str, &str)> {
        let mut headers = Vec::with_capacity(2);
        self.push_headers(&mut headers);
        headers
    }

    /// Adds [`headers`](Self::headers) to `headers`.
    fn push_headers<'m>(&'m self, headers: &mut Vec<(&'m str, &'m str)>) {
        if !self.request_id.is_empty() {
            headers.push(("x-request-id", self.request_id));
        }
        if let Some(traceparent) = self.traceparent {
            headers.push(("traceparent", traceparent));
        }
    }
}

/// A `POST /rpc` request answered.
#[derive(Debug)]
pub(crate) struct Handled {
    /// The answer; `None` means nothing to answer (HTTP 204).
    pub answer: Option<String>,
    /// Whom it was for (the metrics label).
    pub target: CallTarget,
    /// The methods called, in order (only when [`CallMeta::methods`] asked for them).
    pub methods: Vec<String>,
    /// The longest wait for a service's answer, if a service was asked.
    pub upstream: Option<std::time::Duration>,
    /// A routed call got no answer from its service: the router answered it with one of its
    /// own errors (`-32001`…`-32005`). The traffic counters count the request as a router
    /// error, whatever the HTTP status.
    pub call_failed: bool,
    /// What the router's error said (`-32004 service s: …`): the first of a batch, with how
    /// many failed. For the access log.
    pub failure: Option<String>,
}

/// `data` with the request's id added (an object's field; a data of another shape stays
/// as it is).
fn with_request_id(data: Option<Value>, meta: &CallMeta<'_>) -> Option<Value> {
    if meta.request_id.is_empty() {
        return data;
    }
    match data {
        None => Some(json!({"request_id": meta.request_id})),
        Some(Value::Object(mut map)) => {
            map.insert("request_id".into(), json!(meta.request_id));
            Some(Value::Object(map))
        }
        other => other,
    }
}

/// The JSON-RPC front end: parses bodies, answers router methods, forwards the rest.
pub(crate) struct Rpc {
    /// The registry, the pool and their limits.
    shared: Arc<Shared>,
    module: RpcModule<Arc<Shared>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NameParam {
    Object { name: String },
    Array((String,)),
}

struct RawParams<'a>(Option<&'a RawValue>);

impl ToRpcParams for RawParams<'_> {
    fn to_rpc_params(self) -> Result<Option<Box<RawValue>>, serde_json::Error> {
        Ok(self.0.map(|p| p.to_owned()))
    }
}

// === impl Shared (the router's own methods) ===

impl Shared {
    /// The `router.service` result.
    fn service(&self, name: &str) -> Result<Box<RawValue>, ErrorObjectOwned> {
        self.registry
            .service_json(name)
            .ok_or_else(|| no_such_service(name))
    }

    /// The `router.methods` result, written straight to JSON text.
    fn methods(&self) -> Box<RawValue> {
        #[derive(serde::Serialize)]
        struct Entry<'a> {
            service: &'a str,
            method: String,
            summary: Option<&'a str>,
        }
        let (table, catalog) = (self.registry.table(), self.registry.catalog());
        // Only names `/rpc` routes to the service: `router.x` of a service named `router` is
        // the router's own.
        let methods: Vec<Entry<'_>> = catalog
            .methods(&table.services)
            .into_iter()
            .map(|(service, method, summary)| Entry {
                service,
                method: format!("{service}.{method}"),
                summary,
            })
            .filter(|e| !is_own_method(&e.method))
            .collect();
        raw(&methods)
    }

    /// The `router.spec` result, from the catalog; fetched first with `refresh`, or when the
    /// catalog has not looked at the service yet.
    async fn spec(&self, name: &str, refresh: bool) -> Result<Arc<RawValue>, ErrorObjectOwned> {
        let table = self.registry.table();
        let Some(service) = table.service(name) else {
            return Err(no_such_service(name));
        };
        if refresh || self.registry.catalog().get(name).is_none() {
            self.registry.refresh_catalog(name).await;
        }
        let catalog = self.registry.catalog();
        let entry = catalog.get(name);
        if let Some(doc) = entry.and_then(|e| e.document.clone()) {
            return Ok(doc);
        }
        let reason = catalog.no_spec_reason(service);
        Err(ErrorObjectOwned::owned(
            NO_SPEC,
            format!("service {name} has no spec: {reason}"),
            Some(json!({"service": name, "reason": reason})),
        ))
    }

    /// How routed calls are made: within the upstream timeout and `--max-body`, on pooled
    /// connections, never sent twice (a call may change something).
    fn routed(&self) -> CallOptions<'static> {
        CallOptions {
            timeout: self.upstream_timeout,
            limit: usize::try_from(self.max_body).unwrap_or(usize::MAX),
            headers: &[],
            close: false,
            idempotent: false,
        }
    }

    /// `Ok` once the first full scan is in the table. Before that (a slow first scan, still
    /// going after the `--upstream-timeout` a request waits for it), an empty or partial table
    /// would read as "no services": `-32603` says the router is starting instead.
    fn scanned(&self) -> Result<(), ErrorObjectOwned> {
        let table = self.registry.table();
        if table.scanned() {
            return Ok(());
        }
        Err(ErrorObjectOwned::owned(
            -32603,
            format!(
                "the router is still starting: its first scan of {} has not finished; try again shortly",
                table.root.display()
            ),
            None::<()>,
        ))
    }

    /// The rpc socket of a service, if the table has it in a state worth trying.
    fn rpc_socket(&self, name: &str) -> Result<Key, CallError> {
        let table = self.registry.table();
        let Some(service) = table.service(name) else {
            let starting = if table.scanned() {
                ""
            } else {
                " (the router is still starting: its first scan has not finished)"
            };
            let name = &shown(name);
            return Err(CallError::router(
                NO_SUCH_SERVICE,
                format!("no such service: {name}{starting}"),
                name,
            ));
        };
        match service.sockets.iter().find(|s| s.kind == "rpc") {
            Some(s) if matches!(s.state, SocketState::Live | SocketState::Busy) => Ok(Key::of(s)),
            Some(s) => Err(CallError::router(
                NOT_LIVE,
                format!("service {name} has no live rpc socket (it is {})", s.state),
                name,
            )),
            None => Err(CallError::router(
                NOT_LIVE,
                format!("service {name} has no rpc socket"),
                name,
            )),
        }
    }
}

fn no_such_service(name: &str) -> ErrorObjectOwned {
    let name = &shown(name);
    router_error(NO_SUCH_SERVICE, format!("no such service: {name}"), name)
}

/// A name the caller chose, as an error message echoes it: at most 256 bytes (cut at a
/// character, ending in `…`), so a megabyte of method name is not sent back whole.
fn shown(name: &str) -> String {
    crate::json::cut_str(name, 256)
}

fn router_error(code: i32, message: String, service: &str) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code, message, Some(json!({"service": service})))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SpecParams {
    Object {
        name: String,
        #[serde(default)]
        refresh: bool,
    },
    Array((String,)),
    ArrayRefresh((String, bool)),
}

fn spec_params(params: jsonrpsee::types::Params<'_>) -> Result<(String, bool), ErrorObjectOwned> {
    match params.parse::<SpecParams>() {
        Ok(SpecParams::Object { name, refresh } | SpecParams::ArrayRefresh((name, refresh))) => {
            Ok((name, refresh))
        }
        Ok(SpecParams::Array((name,))) => Ok((name, false)),
        Err(_) => Err(ErrorObjectOwned::owned(
            -32602,
            "invalid params: expected {\"name\": S, \"refresh\"?: bool}, [S] or [S, bool]",
            None::<()>,
        )),
    }
}

fn name_param(params: jsonrpsee::types::Params<'_>) -> Result<String, ErrorObjectOwned> {
    match params.parse::<NameParam>() {
        Ok(NameParam::Object { name } | NameParam::Array((name,))) => Ok(name),
        Err(_) => Err(ErrorObjectOwned::owned(
            -32602,
            "invalid params: expected {\"name\": S} or [S]",
            None::<()>,
        )),
    }
}

/// The router's own methods.
fn module(ctx: Arc<Shared>) -> RpcModule<Arc<Shared>> {
    let mut m = RpcModule::new(ctx);
    let no_params = |p: &jsonrpsee::types::Params<'_>| -> Result<(), ErrorObjectOwned> {
        match p.as_str().map(str::trim) {
            None | Some("[]") | Some("{}") | Some("null") => Ok(()),
            Some(_) => Err(ErrorObjectOwned::owned(
                -32602,
                "invalid params: this method takes none",
                None::<()>,
            )),
        }
    };
    m.register_method("router.health", move |p, ctx, _| {
        no_params(&p).map(|()| ctx.health())
    })
    .expect("unique name");
    m.register_method("router.services", move |p, ctx, _| {
        no_params(&p)?;
        ctx.scanned()?;
        Ok::<_, ErrorObjectOwned>(ctx.registry.services_json())
    })
    .expect("unique name");
    m.register_method("router.service", |p, ctx, _| {
        let name = name_param(p)?;
        ctx.scanned()?;
        ctx.service(&name)
    })
    .expect("unique name");
    m.register_method("router.methods", move |p, ctx, _| {
        no_params(&p)?;
        ctx.scanned()?;
        Ok::<_, ErrorObjectOwned>(ctx.methods())
    })
    .expect("unique name");
    m.register_async_method("router.scan", move |p, ctx, _| async move {
        no_params(&p)?;
        let summary = ctx
            .registry
            .scan_now()
            .await
            .map_err(|e| ErrorObjectOwned::owned(-32603, e.to_string(), None::<()>))?;
        // Every service's documents are fetched again, in the background.
        ctx.registry.refresh_catalog_all();
        Ok::<_, ErrorObjectOwned>(json!(summary))
    })
    .expect("unique name");
    m.register_async_method("router.spec", |p, ctx, _| async move {
        let (name, refresh) = spec_params(p)?;
        ctx.spec(&name, refresh).await
    })
    .expect("unique name");
    m.register_method("router.traffic", move |p, ctx, _| {
        no_params(&p).map(|()| ctx.traffic())
    })
    .expect("unique name");
    m.register_method("rpc.discover", move |p, _, _| {
        no_params(&p).map(|()| openrpc())
    })
    .expect("unique name");
    m
}

// === impl Rpc ===

impl Rpc {
    /// Builds the front end.
    pub(crate) fn new(ctx: Arc<Shared>) -> Rpc {
        Rpc {
            module: module(ctx.clone()),
            shared: ctx,
        }
    }

    /// Answers one `POST /rpc` body. `None` means nothing to answer (HTTP 204).
    pub(crate) async fn handle(&self, body: &[u8]) -> Option<String> {
        self.handle_for(body, &CallMeta::default()).await.answer
    }

    /// Like [`handle`](Rpc::handle) for a request with `meta`, also naming whom the request
    /// was for, for the metrics (the service every call in it was routed to, else the
    /// router), its methods and its wait for services.
    pub(crate) async fn handle_for(&self, body: &[u8], meta: &CallMeta<'_>) -> Handled {
        // Right after start-up the table is empty until the first scan: wait for it rather
        // than answer "no such service" for a service that is there.
        self.shared
            .registry
            .wait_ready(self.shared.upstream_timeout)
            .await;
        let router_error = |code, message: String| Handled {
            answer: Some(codec::error(
                None,
                code,
                &message,
                with_request_id(None, meta).as_ref(),
            )),
            target: CallTarget::Router,
            methods: Vec::new(),
            upstream: None,
            call_failed: false,
            failure: None,
        };
        let names = |entries: &[&Entry<'_>]| method_names(entries, meta.methods);
        match codec::parse(body) {
            Err(BodyError::Parse(e)) => router_error(-32700, format!("parse error: {e}")),
            Err(BodyError::Invalid(e)) => router_error(-32600, format!("invalid request: {e}")),
            Ok(RpcBody::Single(entry)) => {
                let methods = names(&[&entry]);
                let budget = AnswerBudget::new(self.shared.max_body, false);
                let (answer, target, upstream, failure) = self.entry(entry, meta, &budget).await;
                Handled {
                    answer,
                    target,
                    methods,
                    upstream,
                    call_failed: failure.is_some(),
                    failure,
                }
            }
            Ok(RpcBody::Batch(entries)) => {
                let methods = names(&entries.iter().collect::<Vec<_>>());
                // The batch's answers share one budget: together they are held at once.
                let budget = AnswerBudget::new(self.shared.max_body, true);
                let answered =
                    join_all(entries.into_iter().map(|e| self.entry(e, meta, &budget))).await;
                let target = combined(answered.iter().map(|(_, t, _, _)| t));
                let upstream = answered.iter().filter_map(|(_, _, u, _)| *u).max();
                let failed = answered.iter().filter(|(_, _, _, f)| f.is_some()).count();
                let failure = answered
                    .iter()
                    .find_map(|(_, _, _, f)| f.as_ref())
                    .map(|first| {
                        format!(
                            "{failed} of {} calls failed; the first: {first}",
                            answered.len()
                        )
                    });
                let answers: Vec<String> =
                    answered.into_iter().filter_map(|(a, _, _, _)| a).collect();
                // One allocation for the reply array, each answer copied once.
                let answer = (!answers.is_empty()).then(|| {
                    let len = answers.iter().map(|a| a.len() + 1).sum::<usize>() + 1;
                    let mut out = String::with_capacity(len);
                    out.push('[');
                    for (i, a) in answers.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        out.push_str(a);
                    }
                    out.push(']');
                    out
                });
                Handled {
                    answer,
                    target,
                    methods,
                    upstream,
                    call_failed: failure.is_some(),
                    failure,
                }
            }
        }
    }

    /// Whom a `POST /rpc` body is for and its methods, as [`handle_for`](Rpc::handle_for)
    /// would say, without calling anything: the label of a request abandoned before its
    /// answer (its client left).
    pub(crate) fn label_for(&self, body: &[u8], methods: bool) -> (CallTarget, Vec<String>) {
        match codec::parse(body) {
            Err(_) => (CallTarget::Router, Vec::new()),
            Ok(RpcBody::Single(entry)) => {
                (self.target_of(&entry), method_names(&[&entry], methods))
            }
            Ok(RpcBody::Batch(entries)) => {
                let targets: Vec<CallTarget> = entries.iter().map(|e| self.target_of(e)).collect();
                let entries: Vec<&Entry<'_>> = entries.iter().collect();
                (combined(targets.iter()), method_names(&entries, methods))
            }
        }
    }

    /// Whom one call of a body is for: the service its method is routed to, if that is in the
    /// table, else the router (its own methods, errors, unknown services).
    fn target_of(&self, entry: &Entry<'_>) -> CallTarget {
        match entry {
            Entry::Call(call) => self.target_of_method(&call.method),
            Entry::Invalid { .. } => CallTarget::Router,
        }
    }

    /// [`target_of`](Rpc::target_of) a call of `method`.
    fn target_of_method(&self, method: &str) -> CallTarget {
        let own = method
            .strip_prefix(OWN_SERVICE)
            .is_some_and(|r| r.starts_with('.'));
        if own || is_own_method(method) {
            return CallTarget::Router;
        }
        match method.split_once('.') {
            Some((service, rest))
                if !service.is_empty()
                    && !rest.is_empty()
                    && self.shared.registry.table().service(service).is_some() =>
            {
                CallTarget::Service(service.to_owned())
            }
            _ => CallTarget::Router,
        }
    }

    /// Answers one call of a body: its answer (none for a notification), whom it was for,
    /// how long a service took to answer it, and the router error a routed call got instead
    /// of its service's answer, in words.
    async fn entry(
        &self,
        entry: Entry<'_>,
        meta: &CallMeta<'_>,
        budget: &AnswerBudget,
    ) -> (
        Option<String>,
        CallTarget,
        Option<std::time::Duration>,
        Option<String>,
    ) {
        let call = match entry {
            Entry::Invalid { id, reason } => {
                let data = with_request_id(None, meta);
                let answer = codec::error(
                    id,
                    -32600,
                    &format!("invalid request: {reason}"),
                    data.as_ref(),
                );
                return (Some(answer), CallTarget::Router, None, None);
            }
            Entry::Call(call) => call,
        };
        let method = call.method.as_ref();
        // `hero_router.<m>` names the router's own service: answered here like `<m>`, as its
        // socket would answer it, but never relayed there (`hero_router.hero_router.…` would
        // be relayed to itself again, a hop per prefix; each hop takes one off, so the answer
        // is that of the method without them).
        let mut own = None;
        while let Some(rest) = own
            .unwrap_or(method)
            .strip_prefix(OWN_SERVICE)
            .and_then(|rest| rest.strip_prefix('.'))
        {
            own = Some(rest);
        }
        if own.is_some() || is_own_method(method) {
            let result = self.call_local(own.unwrap_or(method), call.params).await;
            let Some(id) = call.id else {
                return (None, CallTarget::Router, None, None);
            };
            let answer = match result {
                Ok(v) => codec::success(id, v.get()),
                Err(e) => codec::error(
                    Some(id),
                    e.code,
                    // Named as the caller wrote it (`hero_router.router.nope`).
                    &if e.code == -32601 {
                        format!("method not found: {}", shown(method))
                    } else {
                        e.message
                    },
                    with_request_id(
                        e.data.as_deref().and_then(|d| serde_json::from_str(d).ok()),
                        meta,
                    )
                    .as_ref(),
                ),
            };
            return (Some(answer), CallTarget::Router, None, None);
        }
        match method.split_once('.') {
            Some((service, rest)) if !service.is_empty() && !rest.is_empty() => {
                // Only a service in the table gets a label: a client must not be able to
                // grow the metrics with made-up names.
                let target = self.target_of_method(method);
                let (answer, failed, waited) =
                    self.forward(&call, service, rest, meta, budget).await;
                let waited = waited.filter(|_| matches!(target, CallTarget::Service(_)));
                (answer, target, waited, failed)
            }
            _ => {
                let answer = call.id.map(|id| {
                    codec::error(
                        Some(id),
                        -32601,
                        &format!("method not found: {}", shown(method)),
                        with_request_id(None, meta).as_ref(),
                    )
                });
                (answer, CallTarget::Router, None, None)
            }
        }
    }

    /// Forwards a routed call: the service's answer passes as it is (its id, its result or
    /// its own error); only a call that got no JSON-RPC answer gets a router error (then
    /// `true`). Also how long the service took to answer, if it answered at all (a timeout or
    /// a refused connection has no such time, as a proxied 504 has none).
    async fn forward(
        &self,
        call: &Call<'_>,
        service: &str,
        rest: &str,
        meta: &CallMeta<'_>,
        budget: &AnswerBudget,
    ) -> (Option<String>, Option<String>, Option<std::time::Duration>) {
        // Only the router's own errors are made here: a service's pass through as they came.
        let fail = |e: CallError| {
            let data = with_request_id(Some(json!({"service": shown(service)})), meta);
            let message = e.to_string();
            let answer = call
                .id
                .map(|id| codec::error(Some(id), e.code(), &message, data.as_ref()));
            (answer, Some(format!("{} {message}", e.code())))
        };
        let unanswered = |e: CallError| {
            let (answer, failed) = fail(e);
            (answer, failed, None)
        };
        let key = match self.shared.rpc_socket(service) {
            Ok(k) => k,
            Err(e) => return unanswered(e),
        };
        let over_budget = || {
            CallError::router(
                BAD_UPSTREAM,
                format!(
                    "service {service}: the answers of this batch together would be larger than the limit of {} bytes (--max-body); send fewer calls at once",
                    budget.bytes.limit()
                ),
                service,
            )
        };
        // A batch whose answers already hold all of the limit sends no more calls: an answer
        // that could not be returned is not worth a call that may change something.
        if budget.batch && budget.bytes.left() == 0 {
            return unanswered(over_budget());
        }
        let body = codec::forward_request(call, rest);
        let how = self.shared.routed();
        let mut headers = Vec::with_capacity(3);
        headers.push(("content-type", "application/json"));
        meta.push_headers(&mut headers);
        let req = OwnRequest {
            method: "POST",
            path: "/rpc",
            headers: &headers,
            body: body.as_bytes(),
            close: how.close,
            idempotent: how.idempotent,
        };
        let asked = tokio::time::Instant::now();
        // The answer's bytes are charged as they are read, so the answers a batch holds at
        // once never pass the limit, however many arrive together.
        let answer = match self
            .shared
            .pool
            .send_within(&key, &req, how.timeout, &budget.bytes)
            .await
        {
            Ok(a) => a,
            Err(upstream::SendError::TooLarge { .. }) if budget.batch => {
                return unanswered(over_budget());
            }
            Err(e) => return unanswered(CallError::unanswered(e, service)),
        };
        let waited = Some(asked.elapsed());
        if call.id.is_none() {
            // A notification's answer is dropped: its bytes are free again.
            budget.bytes.give_back(answer.body.len());
            return (None, None, waited);
        }
        match codec::check_reply(&answer.body) {
            Ok(()) => (String::from_utf8(Vec::from(answer.body)).ok(), None, waited),
            Err(what) => {
                budget.bytes.give_back(answer.body.len());
                let why = upstream::not_a_reply(service, &answer, what);
                let (answer, failed) = fail(CallError::router(BAD_UPSTREAM, why, service));
                (answer, failed, waited)
            }
        }
    }

    /// Calls `method` of `service` for the router's own users (the MCP gateway): the result
    /// as the service wrote it, or an error that says whether the service answered it or the
    /// router got no answer. The router's own methods (`hero_router`) are called in-process.
    pub(crate) async fn call(
        &self,
        service: &str,
        method: &str,
        params: Option<&RawValue>,
        meta: &CallMeta<'_>,
    ) -> Result<Box<RawValue>, CallError> {
        self.shared
            .registry
            .wait_ready(self.shared.upstream_timeout)
            .await;
        if service == OWN_SERVICE {
            return self.call_own(method, params).await;
        }
        let key = self.shared.rpc_socket(service)?;
        let headers = meta.headers();
        let how = CallOptions {
            headers: &headers,
            ..self.shared.routed()
        };
        upstream::call(&self.shared.pool, &key, service, method, params, &how).await
    }

    /// One of the router's own methods, as the `hero_router` service answers it.
    async fn call_own(
        &self,
        method: &str,
        params: Option<&RawValue>,
    ) -> Result<Box<RawValue>, CallError> {
        self.call_local(method, params)
            .await
            .map_err(|error| CallError::Service {
                service: OWN_SERVICE.to_owned(),
                error,
            })
    }

    /// Calls one of the router's own methods in-process: its result, or its error (-32601
    /// naming `method` when the router has no such method).
    async fn call_local(
        &self,
        method: &str,
        params: Option<&RawValue>,
    ) -> Result<Box<RawValue>, ServiceError> {
        let error = |code: i64, message: String, data: Option<String>| ServiceError {
            code,
            message,
            data,
        };
        if !is_own_method(method) || self.module.method(method).is_none() {
            return Err(error(
                -32601,
                format!("method not found: {}", shown(method)),
                None,
            ));
        }
        // The result as the method wrote it: `router.spec` is a service's document, whose
        // numbers must not pass through a double.
        match self
            .module
            .call::<_, Box<RawValue>>(method, RawParams(params))
            .await
        {
            Ok(v) => Ok(v),
            Err(MethodsError::JsonRpc(e)) => Err(error(
                i64::from(e.code()),
                e.message().to_owned(),
                e.data().map(|d| d.get().to_owned()),
            )),
            Err(e) => Err(error(-32603, format!("internal error: {e}"), None)),
        }
    }
}

/// What the answers of one `POST /rpc` body may hold at once: `--max-body`, shared by the
/// calls of a batch (the answers kept for the reply stay charged until it goes out).
struct AnswerBudget {
    bytes: upstream::Budget,
    /// Shared by the calls of a batch (the errors then speak of the batch).
    batch: bool,
}

impl AnswerBudget {
    fn new(limit: u64, batch: bool) -> AnswerBudget {
        AnswerBudget {
            bytes: upstream::Budget::new(usize::try_from(limit).unwrap_or(usize::MAX)),
            batch,
        }
    }
}

/// Whether `method` is one of the names the router answers itself (`router.*`,
/// `rpc.discover`), whether or not it has a method by that name.
/// The methods of a body's calls as the access log lists them (none unless `wanted`).
fn method_names(entries: &[&Entry<'_>], wanted: bool) -> Vec<String> {
    entries
        .iter()
        .filter(|_| wanted)
        .take(traffic::MAX_METHODS)
        .map(|e| match e {
            Entry::Call(call) => traffic::label(&call.method),
            Entry::Invalid { .. } => "-".to_owned(),
        })
        .collect()
}

/// Whom a batch was for: the one service all its calls went to, else the router.
fn combined<'t>(mut targets: impl Iterator<Item = &'t CallTarget>) -> CallTarget {
    let first = targets.next().cloned().unwrap_or(CallTarget::Router);
    if targets.all(|t| *t == first) {
        first
    } else {
        CallTarget::Router
    }
}

/// True for a method the router answers itself (`router.*`, `rpc.discover`): a service named
/// `router` (or `rpc`, for `discover`) cannot be reached by that name through `/rpc`
/// (docs/json-rpc.md#reserved-names).
pub(crate) fn is_own_method(method: &str) -> bool {
    method.starts_with("router.") || method == "rpc.discover"
}
