//! The composition root: builds the host's parts (state store, audit log,
//! leases, host, transactions, watch hub) in the order recovery needs,
//! and serves them on whatever listeners `main` binds. The services
//! themselves are listed once, in [`services`].

pub mod services;

use std::{future::Future, path::PathBuf, sync::Arc, time::Duration};

use linkherd_proto::FILE_DESCRIPTOR_SET;
use tokio::net::{TcpListener, UnixListener};
use tonic::service::Routes;

use crate::{
    context::Context,
    leases::PromiscLeases,
    net::NetOps,
    state::{audit::Audit, store::Store},
    transport::{
        auth::{Refusal, Rpc},
        grpc::{self, ConnLimits, GrpcError, Guards, Listener},
        tls::TlsPem,
    },
};

/// Resource limits applied to every listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request message accepted.
    pub max_message_bytes: usize,
    /// Concurrent requests per connection.
    pub concurrency_per_connection: usize,
    /// Time allowed to produce a response (streams are not cut by it).
    pub request_timeout: Duration,
    /// HTTP/2 streams one connection may have open at once.
    pub max_concurrent_streams: u32,
    /// Request bytes held at once over every connection and listener.
    pub request_bytes_in_flight: usize,
    /// Open `Watch` streams, per identity and in total.
    pub watch: crate::watch::WatchLimits,
    /// Connections open at once on each local listener (the unix socket,
    /// the plaintext loopback one); the mTLS listener has its own caps.
    pub local_connections: usize,
    /// How long a stopping agent waits for requests and mutations in
    /// flight before it exits anyway.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 4 * 1024 * 1024,
            concurrency_per_connection: 64,
            request_timeout: Duration::from_secs(60),
            max_concurrent_streams: 128,
            request_bytes_in_flight: 64 * 1024 * 1024,
            watch: crate::watch::WatchLimits::default(),
            local_connections: 256,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Errors starting or running a listener.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Grpc(#[from] GrpcError),
    #[error("binding the listener: {0}")]
    Bind(#[source] std::io::Error),
    #[error("serving plain HTTP: {0}")]
    Plain(#[source] std::io::Error),
    #[error("reflection service: {0}")]
    Reflection(String),
    #[error(transparent)]
    Store(#[from] crate::state::store::StoreError),
    #[error("rolling back the journaled transaction: {0}")]
    Recover(#[source] crate::error::Error),
}

/// Agent settings that are not about listeners.
#[derive(Debug, Clone, Default)]
pub struct AgentOptions {
    /// Where the audit log and lease journal live; `None`: nowhere (tests).
    pub state_dir: Option<PathBuf>,
    /// Fleet name of this host; defaults to the kernel hostname.
    pub host_name: Option<String>,
    /// Prefix of this agent's named namespaces under /run/netns.
    pub netns_prefix: String,
    /// Take back, once at start, the endpoints this agent's marks name in
    /// its namespaces that its records lost (`--adopt`; audited).
    pub adopt: bool,
    /// Where the agent notes the namespaces it made, outside its state
    /// directory (`--run-dir`); `None`: nowhere, and `--adopt` takes
    /// nothing (tests).
    pub run_dir: Option<PathBuf>,
    pub limits: Limits,
    /// Convergence (`[reconcile]`): the start pass runs in [`Agent::new`],
    /// the rest once [`Agent::spawn_reconciler`] is called.
    pub reconcile: crate::converge::Settings,
    /// Crash-test hooks (feature `faults`; empty otherwise).
    pub faults: crate::faults::Faults,
}

/// A bound listener of any kind the agent serves.
#[derive(Debug)]
pub enum AgentListener {
    /// The API: mTLS, plaintext loopback or the local socket.
    Grpc(Listener),
    /// Docker's network and IPAM driver protocol on a unix socket.
    Docker(UnixListener),
    /// `GET /healthz` on a loopback address.
    Health(TcpListener),
}

/// How a shutdown went: whether it finished within its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Every request in flight got its answer.
    pub listeners_done: bool,
    /// Mutations still running when the bound passed.
    pub mutations_left: usize,
}

/// A running agent: its shared context and its services.
#[derive(Debug, Clone)]
pub struct Agent {
    ctx: Arc<Context>,
    limits: Limits,
    /// Request bytes in flight, shared by every listener.
    budget: crate::transport::budget::RequestBudget,
    /// `grpc.health.v1` state, shared by every listener (a subsystem that
    /// fails reports itself NOT_SERVING here).
    health: tonic_health::server::HealthReporter,
    /// The state directory (for the Docker plugin's records).
    store: Option<Store>,
    /// The Docker plugin, made once (it reaps at its start).
    docker: Arc<tokio::sync::OnceCell<Arc<crate::docker::Plugin>>>,
}

fn system_hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into())
}

impl Agent {
    /// Opens the state store, the audit log, re-arms journaled
    /// promiscuous-mode leases and rolls back a journaled transaction.
    pub async fn new(net: Arc<dyn NetOps>, opts: AgentOptions) -> Result<Self, ServeError> {
        let store = match &opts.state_dir {
            Some(dir) => Some(Store::open(dir.clone()).await?),
            None => None,
        };
        let audit = Arc::new(match &store {
            Some(s) => Audit::open(s)?,
            None => Audit::tracing_only(),
        });
        let leases = PromiscLeases::new(net.clone(), audit.clone(), store.as_ref());
        leases.restore().await?;
        let host_name = opts.host_name.clone().unwrap_or_else(system_hostname);
        let registry = crate::host::registry::Registry::load(store.as_ref()).await?;
        let catalog = crate::host::catalog::Catalog::load(store.as_ref()).await?;
        let agent_id =
            crate::state::agent_id::AgentId::load(store.as_ref(), &opts.netns_prefix).await?;
        let made = crate::host::made_netns::MadeNetns::new(opts.run_dir.as_deref());
        let host = Arc::new(crate::host::Host::new(
            net.clone(),
            (registry, catalog),
            opts.netns_prefix.clone(),
            (agent_id, made),
        ));
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let txns = crate::txn::Transactions::new(
            host.clone(),
            audit.clone(),
            store.clone(),
            (opts.faults.clone(), metrics.clone()),
        );
        // A transaction left unconfirmed by a previous run is rolled back.
        txns.recover().await.map_err(ServeError::Recover)?;
        if let Some(s) = &store {
            audit_quarantined(&audit, s);
        }
        forget_gone(&host, &audit)
            .await
            .map_err(ServeError::Recover)?;
        if opts.adopt {
            adopt(&host, &audit).await.map_err(ServeError::Recover)?;
        }
        let converge = Arc::new(crate::converge::Reconciler::new(
            host.clone(),
            leases.clone(),
            audit.clone(),
            txns.clone(),
            (opts.reconcile, metrics.clone()),
        ));
        restore(&host, &converge, &audit).await?;
        let watch = opts.limits.watch;
        let ctx = Arc::new(Context::new(
            net,
            audit,
            leases,
            host,
            txns,
            (host_name, converge, metrics),
            watch,
        ));
        let health = tonic_health::server::HealthReporter::new();
        ctx.watches.report_health(health.clone());
        Ok(Self {
            store,
            docker: Arc::default(),
            ctx,
            limits: opts.limits,
            health,
            budget: crate::transport::budget::RequestBudget::new(
                opts.limits.request_bytes_in_flight,
            ),
        })
    }

    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// Starts the reconciler's passes after the one at start: on kernel
    /// events, retries and periodically (nothing with policy `off`). The
    /// task ends with the runtime.
    pub fn spawn_reconciler(&self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(crate::converge::runner::run(
            self.ctx.converge.clone(),
            self.ctx.net.clone(),
        ))
    }

    /// Serves one listener of any kind until `shutdown` completes: the
    /// one entry `main` spawns every configured listener through.
    pub async fn serve(
        &self,
        listener: AgentListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        match listener {
            AgentListener::Grpc(l) => self.serve_grpc(l, shutdown).await,
            AgentListener::Docker(l) => self.serve_docker(l, shutdown).await,
            AgentListener::Health(l) => self.serve_health(l, shutdown).await,
        }
    }

    /// Serves Docker's remote driver protocol on `listener` (see
    /// [`crate::docker`]).
    pub async fn serve_docker(
        &self,
        listener: UnixListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let plugin = self.docker_plugin().await?;
        crate::docker::serve(plugin, listener, shutdown)
            .await
            .map_err(ServeError::Plain)
    }

    /// The Docker plugin, made at the first call: its bindings loaded and
    /// the endpoints Docker forgot while no agent served it reaped. `main`
    /// calls it before serving anything, so an agent that answers has done
    /// that housekeeping.
    pub async fn docker_plugin(&self) -> Result<Arc<crate::docker::Plugin>, ServeError> {
        let made = self
            .docker
            .get_or_try_init(|| crate::docker::Plugin::new(self.ctx.clone(), self.store.as_ref()))
            .await?;
        Ok(made.clone())
    }

    /// Serves `GET /healthz` in plain HTTP on a loopback `listener`: the
    /// agent's overall `grpc.health.v1` status, for a kubelet's readiness
    /// probe (see [`crate::transport::health_http`]).
    pub async fn serve_health(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        crate::transport::health_http::serve(
            self.health.clone(),
            self.ctx.metrics.clone(),
            listener,
            shutdown,
        )
        .await
        .map_err(ServeError::Plain)
    }

    /// The second half of a shutdown, once the listeners were told to stop
    /// accepting: ends every Watch stream (they would hold their
    /// connections open for ever), then waits — all within
    /// `[limits] shutdown_grace_seconds` — for `listeners` to finish their
    /// requests in flight and for mutations running to their end, and
    /// flushes the audit log. What is still running after that is cut when
    /// the process exits: a transaction's undo is journaled before each of
    /// its steps, so the next start rolls it back.
    pub async fn drain<F: Future<Output = ()>>(&self, listeners: F) -> Drained {
        let deadline = tokio::time::Instant::now() + self.limits.shutdown_grace;
        self.ctx.watches.stop();
        let listeners_done = tokio::time::timeout_at(deadline, listeners).await.is_ok();
        self.ctx.mutations.close();
        let mutations_done = tokio::time::timeout_at(deadline, self.ctx.mutations.wait())
            .await
            .is_ok();
        self.ctx.audit.flush().await;
        Drained {
            listeners_done,
            mutations_left: if mutations_done {
                0
            } else {
                self.ctx.mutations.len()
            },
        }
    }

    /// Request bytes held now (see [`crate::transport::budget`]).
    pub fn request_bytes_in_flight(&self) -> usize {
        self.budget.in_flight()
    }

    /// The guards of every gRPC listener; every refusal is audited (who,
    /// which RPC, why).
    fn guards(&self) -> Guards {
        let audit = self.ctx.audit.clone();
        Guards {
            limits: ConnLimits {
                concurrency_per_connection: self.limits.concurrency_per_connection,
                request_timeout: self.limits.request_timeout,
                max_concurrent_streams: self.limits.max_concurrent_streams,
                local_connections: self.limits.local_connections,
            },
            budget: self.budget.clone(),
            metrics: self.ctx.metrics.clone(),
            role_of: services::required_role,
            on_refusal: Arc::new(move |r: &Refusal, rpc: &Rpc| {
                let (name, role) = match &r.who {
                    Some(w) => (w.name.as_str(), Some(w.role)),
                    None => ("unidentified", None),
                };
                audit.refusal(name, role, r.transport, &rpc.0, r.status.message());
            }),
        }
    }

    /// Health, reflection and every service of [`services::SERVICES`];
    /// each service reported SERVING.
    async fn routes(&self) -> Result<Routes, ServeError> {
        for s in services::SERVICES {
            self.health
                .set_service_status(s.name, tonic_health::ServingStatus::Serving)
                .await;
        }
        let health_svc = tonic_health::pb::health_server::HealthServer::new(
            tonic_health::server::HealthService::from_health_reporter(self.health.clone()),
        );
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let v1 = reflection()
            .build_v1()
            .map_err(|e| ServeError::Reflection(e.to_string()))?;
        let v1alpha = reflection()
            .build_v1alpha()
            .map_err(|e| ServeError::Reflection(e.to_string()))?;
        let routes = Routes::new(health_svc).add_service(v1).add_service(v1alpha);
        Ok(services::add_services(
            routes,
            &self.ctx,
            self.limits.max_message_bytes,
        ))
    }

    /// Serves on a TCP listener. With `tls` every client must present a
    /// certificate signed by the client CA; `None` is plaintext, which the
    /// caller must only allow on loopback (see `config`).
    pub async fn serve_tcp(
        &self,
        listener: TcpListener,
        tls: Option<TlsPem>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        let listener = match tls {
            Some(pem) => Listener::Mtls(listener, pem),
            None => Listener::InsecureLoopback(listener),
        };
        self.serve_grpc(listener, shutdown).await
    }

    /// Serves on the local unix socket (peer must be root or the agent's uid).
    pub async fn serve_unix(
        &self,
        listener: UnixListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        self.serve_grpc(Listener::Unix(listener), shutdown).await
    }

    async fn serve_grpc(
        &self,
        listener: Listener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServeError> {
        let routes = self.routes().await?;
        Ok(grpc::serve(listener, routes, &self.guards(), shutdown).await?)
    }
}

/// Audits the state files kept aside at start (they were logged already).
/// Records of endpoints whose process's namespace went while the agent was
/// away, each forgotten in the audit log.
async fn forget_gone(host: &crate::host::Host, audit: &Audit) -> Result<(), crate::error::Error> {
    let who = crate::state::caller::Identity::agent("start");
    for line in host.endpoints().forget_gone().await? {
        tracing::info!(endpoint = %line, "forgetting an endpoint whose namespace is gone");
        audit.record(&who, "forget", &line, "cannot come back", "ok");
    }
    Ok(())
}

/// At start, before anything is served: what older agents recorded less of
/// is read back from the kernel, then the first pass restores what a reboot
/// or crash undid (or, with policy `report`, lists it).
async fn restore(
    host: &crate::host::Host,
    converge: &crate::converge::Reconciler,
    audit: &Audit,
) -> Result<(), ServeError> {
    let who = crate::state::caller::Identity::agent("start");
    for line in host.backfill_desired().await.map_err(ServeError::Recover)? {
        audit.record(
            &who,
            "keep",
            &line,
            "recorded as desired from the kernel",
            "ok",
        );
    }
    match converge.pass(crate::converge::Trigger::Start).await {
        Ok(t) => tracing::info!(
            drifted = t.drifted,
            restored = t.repaired,
            failed = t.failed,
            policy = converge.settings().policy.as_str(),
            "start pass finished"
        ),
        Err(e) => tracing::warn!(error = %e, "start pass could not read the kernel"),
    }
    Ok(())
}

/// `--adopt`: the operator's explicit take-back after a lost state
/// directory, each endpoint taken and each refused in the audit log.
async fn adopt(host: &crate::host::Host, audit: &Audit) -> Result<(), crate::error::Error> {
    let who = crate::state::caller::Identity::agent("--adopt at start");
    let done = host.endpoints().adopt().await?;
    for line in &done.adopted {
        tracing::warn!(endpoint = %line, "adopted from its mark (--adopt)");
        audit.record(&who, "adopt", line, "taken back from its mark", "ok");
    }
    for line in &done.refused {
        tracing::warn!(reason = %line, "not adopted");
        audit.record(&who, "adopt", line, "left alone", "refused");
    }
    tracing::info!(
        adopted = done.adopted.len(),
        refused = done.refused.len(),
        "adoption finished"
    );
    Ok(())
}

fn audit_quarantined(audit: &Audit, store: &Store) {
    let who = crate::state::caller::Identity::agent("start with an unreadable state file");
    for q in store.take_quarantined() {
        let detail = format!("kept as {}: {}", q.kept_as.display(), q.reason);
        audit.record(
            &who,
            "state-corrupt",
            &q.file.display().to_string(),
            &detail,
            "kept aside",
        );
    }
}
