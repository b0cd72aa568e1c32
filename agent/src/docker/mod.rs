//! Docker's remote plugin protocol, served on a unix socket (`--docker-plugin
//! /run/docker/plugins/linkherd.sock`: dockerd finds legacy plugins there
//! and names the driver after the file). One plugin is both the network
//! driver and the IPAM driver, so `docker network create -d linkherd
//! --ipam-driver linkherd` gives Docker networks the catalog's networks,
//! with this host's addresses and the fleet's subnets, gateways and parents.
//!
//! Every call is JSON in, JSON out; a refusal is `{"Err": "..."}` with a
//! message for a Docker user. The socket is bound like the admin socket
//! (0600, in a directory only root may write): dockerd, as root, is the one
//! caller. Its changes (networks bound, endpoints recorded, links made and
//! deleted) are audited as `docker (plugin socket)`; address reservations,
//! in memory until CreateEndpoint records them, are not. An endpoint whose
//! container went while the agent was down, or that was created and never
//! joined, is reaped at start, every minute, and when an address is
//! refused.

mod bindings;
mod driver;
mod ipam;
mod listener;
mod matching;
mod wire;

use std::{future::Future, sync::Arc, time::Duration};

use axum::{
    Router,
    body::Body,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::{
    net::UnixListener,
    sync::{Mutex, Semaphore},
};
use tracing::Instrument;

use crate::{
    api::Call,
    context::Context,
    error::Error,
    state::caller::{Identity, Transport},
    state::store::{Store, StoreError},
    transport::auth::Rpc,
};
use linkherd_proto::model::{Role, bounds::echo};

/// Docker's requests are small; anything bigger is not Docker's.
const MAX_BODY: usize = 64 * 1024;
/// A request's body must arrive within this after its headers.
const BODY_DEADLINE: Duration = Duration::from_secs(10);
/// Calls served at once, counted once their body is in (a slow sender
/// holds no place); more wait.
const MAX_CONCURRENT: usize = 64;
/// A refusal's message is cut to this many bytes: the values in it are
/// cut already, this bounds their number.
const MAX_MESSAGE: usize = 1024;
/// A call that takes longer is answered with an error (a mutation still
/// runs to its end, and is audited).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How often endpoints Docker forgot are reaped (see `Plugin::reap`).
const REAP_EVERY: Duration = Duration::from_secs(60);
/// The media type of the plugin protocol.
const MEDIA_TYPE: &str = "application/vnd.docker.plugins.v1+json";

/// An answer: the JSON Docker reads, or the message of a refusal.
type Reply = Result<Value, String>;

/// The plugin's state: the agent's, and the Docker networks bound.
#[derive(Debug)]
pub struct Plugin {
    ctx: Arc<Context>,
    bindings: Mutex<bindings::Bindings>,
    calls: Semaphore,
}

impl Plugin {
    /// Loads the bindings, and reaps what Docker forgot while no agent
    /// served it.
    pub async fn new(ctx: Arc<Context>, store: Option<&Store>) -> Result<Arc<Self>, StoreError> {
        let plugin = Arc::new(Self {
            ctx,
            bindings: Mutex::new(bindings::Bindings::load(store).await?),
            calls: Semaphore::new(MAX_CONCURRENT),
        });
        plugin.reap().await;
        plugin.reap_on_a_timer();
        Ok(plugin)
    }

    /// Reaps every [`REAP_EVERY`] too: an endpoint Docker created and never
    /// joined, or whose container went without Leave reaching the agent,
    /// must not wait for a restart. Ends with the plugin.
    fn reap_on_a_timer(self: &Arc<Self>) {
        let plugin = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REAP_EVERY);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(p) = plugin.upgrade() else {
                    return;
                };
                p.reap().await;
            }
        });
    }

    /// Detaches the endpoints whose containers are gone without Docker's
    /// Leave and DeleteEndpoint reaching the agent (see
    /// `Host::reap_handovers`), audited; how many.
    async fn reap(&self) -> usize {
        let gone = match self.ctx.host.attachments().reap_handovers().await {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(error = %e, "cannot reap Docker endpoints whose containers are gone");
                return 0;
            }
        };
        let who = Identity::agent("a Docker endpoint whose container is gone");
        for a in &gone {
            let target = format!("{}/{}", a.network, a.container_id);
            let addrs: Vec<String> = a.addresses.iter().map(ToString::to_string).collect();
            let detail = format!("{} does not open any more", a.netns.display());
            let result = format!("released {}", addrs.join(" "));
            self.ctx
                .audit
                .record(&who, "DockerPlugin/Reap", &target, &detail, &result);
        }
        gone.len()
    }

    /// Runs `work` to its end and audits it as Docker's call `method`.
    async fn mutate<T, W, O>(
        &self,
        method: &str,
        target: &str,
        detail: &str,
        work: W,
        ok: O,
    ) -> Result<T, String>
    where
        T: Send + 'static,
        W: Future<Output = Result<T, Error>> + Send + 'static,
        O: FnOnce(&T) -> String + Send + 'static,
    {
        let call = Call {
            who: Identity {
                name: "docker (plugin socket)".to_owned(),
                role: Role::Admin,
                transport: Transport::Unix,
            },
            rpc: Rpc(format!("DockerPlugin/{method}")),
        };
        call.to_the_end(&self.ctx, target, detail, |_| work, ok)
            .await
            .map_err(|s| s.message().to_owned())
    }

    /// Docker's call `method`; `None` for one this plugin does not serve.
    async fn call(self: &Arc<Self>, method: &str, body: &[u8]) -> Option<Reply> {
        let ok = || Some(Ok(Value::Object(Default::default())));
        Some(match method {
            "Plugin.Activate" => Ok(json!({ "Implements": ["NetworkDriver", "IpamDriver"] })),
            "NetworkDriver.GetCapabilities" => {
                Ok(json!({ "Scope": "local", "ConnectivityScope": "local" }))
            }
            "NetworkDriver.CreateNetwork" => run(method, body, |r| self.create_network(r)).await,
            "NetworkDriver.DeleteNetwork" => run(method, body, |r| self.delete_network(r)).await,
            "NetworkDriver.CreateEndpoint" => run(method, body, |r| self.create_endpoint(r)).await,
            "NetworkDriver.DeleteEndpoint" => run(method, body, |r| self.delete_endpoint(r)).await,
            "NetworkDriver.EndpointOperInfo" => run(method, body, |r| self.oper_info(r)).await,
            "NetworkDriver.Join" => run(method, body, |r| self.join(r)).await,
            "NetworkDriver.Leave" => run(method, body, |r| self.leave(r)).await,
            "NetworkDriver.ProgramExternalConnectivity"
            | "NetworkDriver.RevokeExternalConnectivity"
            | "NetworkDriver.DiscoverNew"
            | "NetworkDriver.DiscoverDelete"
            | "IpamDriver.ReleasePool" => return ok(),
            _ => return self.call_ipam(method, body).await,
        })
    }

    async fn call_ipam(self: &Arc<Self>, method: &str, body: &[u8]) -> Option<Reply> {
        Some(match method {
            "IpamDriver.GetCapabilities" => {
                Ok(json!({ "RequiresMACAddress": false, "RequiresRequestReplay": false }))
            }
            "IpamDriver.GetDefaultAddressSpaces" => Ok(json!({
                "LocalDefaultAddressSpace": wire::ADDRESS_SPACE,
                "GlobalDefaultAddressSpace": wire::ADDRESS_SPACE,
            })),
            "IpamDriver.RequestPool" => run(method, body, |r| self.request_pool(r)).await,
            "IpamDriver.RequestAddress" => run(method, body, |r| self.request_address(r)).await,
            "IpamDriver.ReleaseAddress" => run(method, body, |r| self.release_address(r)).await,
            _ => return None,
        })
    }
}

/// `f` on Docker's request, parsed.
async fn run<T, F, Fut>(method: &str, body: &[u8], f: F) -> Reply
where
    T: DeserializeOwned + Default,
    F: FnOnce(T) -> Fut,
    Fut: Future<Output = Reply>,
{
    f(parse(method, body)?).await
}

/// Docker's JSON (an empty body is an empty request).
fn parse<T: DeserializeOwned + Default>(method: &str, body: &[u8]) -> Result<T, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        format!(
            "{}: the request is not what Docker sends: {}",
            echo(method),
            echo(&e.to_string())
        )
    })
}

/// A value from Docker's request as a message shows it: quoted, its control
/// characters escaped, cut to 80 bytes.
pub(super) fn shown(value: &str) -> String {
    format!("{:?}", echo(value))
}

/// A refusal: libnetwork's driver API reads `Err`, its IPAM API `Error`.
fn refusal(msg: &str) -> Value {
    json!({ "Err": msg, "Error": msg })
}

fn answer(status: StatusCode, v: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, MEDIA_TYPE)], v.to_string()).into_response()
}

async fn dispatch(
    State(plugin): State<Arc<Plugin>>,
    Path(method): Path<String>,
    body: Body,
) -> Response {
    let method = echo(&method);
    let body = match tokio::time::timeout(BODY_DEADLINE, axum::body::to_bytes(body, MAX_BODY)).await
    {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            let e = format!("{method}: the request is over {MAX_BODY} bytes");
            return answer(StatusCode::PAYLOAD_TOO_LARGE, &refusal(&e));
        }
        Err(_) => {
            return refused(&format!(
                "{method}: the request's body did not arrive within {} s",
                BODY_DEADLINE.as_secs()
            ));
        }
    };
    let Ok(_place) = plugin.calls.acquire().await else {
        return refused("the agent is shutting down");
    };
    let call = plugin
        .call(&method, &body)
        .instrument(tracing::debug_span!("docker.call"));
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Some(Ok(v))) => answer(StatusCode::OK, &v),
        Ok(Some(Err(e))) => refused(&e),
        Ok(None) => answer(
            StatusCode::NOT_FOUND,
            &json!({ "Err": format!("linkherd does not serve {method}") }),
        ),
        Err(_) => refused(&format!(
            "{method} took longer than {} s (see the agent's log)",
            CALL_TIMEOUT.as_secs()
        )),
    }
}

/// A refusal, logged and answered, its message bounded.
fn refused(message: &str) -> Response {
    let cut = linkherd_proto::model::bounds::cut(message, MAX_MESSAGE, message.len());
    tracing::info!(error = %cut, "refused Docker's call");
    answer(StatusCode::OK, &refusal(&cut))
}

/// Serves the plugin on `listener` until `shutdown` (see [`listener`] for
/// the connection bounds).
pub async fn serve(
    plugin: Arc<Plugin>,
    listener: UnixListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/{method}", post(dispatch))
        .with_state(plugin);
    listener::serve(app, listener, shutdown).await
}
