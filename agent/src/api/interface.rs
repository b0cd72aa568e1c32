//! `linkherd.v1.InterfaceService`: interface state, Watch, and the
//! promiscuous / up / MTU knobs.

use std::{pin::Pin, sync::Arc};

use futures::{Stream, StreamExt};
use linkherd_proto::{
    model::{Interface, InterfaceName, SetMtu, SetPromiscuous, SetUp, ValidationError},
    pb,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::Call;
use crate::{
    context::Context,
    error::Error,
    watch::{
        WatchError,
        stream::{LinkReader, StreamEnd, WatchEvent, Watcher},
    },
};

#[derive(Debug, Clone)]
pub struct InterfaceSvc {
    ctx: Arc<Context>,
}

impl InterfaceSvc {
    pub fn new(ctx: Arc<Context>) -> Self {
        Self { ctx }
    }

    /// The audit word of a change's outcome.
    fn changed_word<T>((_, changed): &(T, bool)) -> String {
        if *changed { "changed" } else { "unchanged" }.to_owned()
    }

    fn outcome(changed: bool) -> i32 {
        if changed {
            pb::Outcome::Changed
        } else {
            pb::Outcome::Unchanged
        }
        .into()
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchInterfacesResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::interface_service_server::InterfaceService for InterfaceSvc {
    type WatchStream = WatchStream;

    async fn list(
        &self,
        _req: Request<pb::ListInterfacesRequest>,
    ) -> Result<Response<pb::ListInterfacesResponse>, Status> {
        let mut ifaces = self.ctx.net.links().await.map_err(Error::from)?;
        self.ctx.leases.annotate(&mut ifaces).await;
        Ok(Response::new(pb::ListInterfacesResponse {
            interfaces: ifaces.into_iter().map(Into::into).collect(),
        }))
    }

    async fn get(
        &self,
        req: Request<pb::GetInterfaceRequest>,
    ) -> Result<Response<pb::GetInterfaceResponse>, Status> {
        let InterfaceName(name) = req.into_inner().try_into()?;
        let mut iface = self.ctx.net.link(&name).await.map_err(Error::from)?;
        iface.promisc_lease = self.ctx.leases.lease_of(iface.index).await;
        Ok(Response::new(pb::GetInterfaceResponse {
            interface: Some(iface.into()),
        }))
    }

    async fn watch(
        &self,
        req: Request<pb::WatchInterfacesRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let call = Call::of(&req)?;
        // Subscribe before the snapshot: a change between the two shows up
        // as an event instead of being lost. The hub shares one kernel
        // subscription between all streams and caps them (per identity and
        // in total); the stream's place is given back when it ends.
        let events = self.ctx.watches.subscribe(&call.who.name).await?;
        let links = LinkReader {
            net: self.ctx.net.clone(),
            leases: self.ctx.leases.clone(),
        };
        let snapshot = links.links().await.map_err(Error::from)?;
        let (tx, rx) = mpsc::channel(64);
        // A panic ends this stream (the client sees it end) and is logged.
        crate::watch::spawn_supervised(
            "a Watch stream",
            Watcher { links, tx }.run(snapshot, events),
            async {},
        );
        Ok(Response::new(Box::pin(
            ReceiverStream::new(rx).map(watch_response),
        )))
    }

    async fn set_promiscuous(
        &self,
        req: Request<pb::SetPromiscuousRequest>,
    ) -> Result<Response<pb::SetPromiscuousResponse>, Status> {
        let call = Call::of(&req)?;
        let raw_name = req.get_ref().name.clone();
        let detail = format!(
            "promisc {}{}",
            if req.get_ref().enabled { "on" } else { "off" },
            match req.get_ref().lease_seconds {
                0 => String::new(),
                s => format!(" lease {s}s"),
            }
        );
        let raw = req.into_inner();
        // Run to the end and audited even if the caller goes away.
        let work = |ctx: Arc<Context>| async move {
            let r: SetPromiscuous = raw.try_into()?;
            let link = ctx.net.link(&r.name).await?;
            let set = ctx.leases.set(&link, r.enabled, r.lease).await?;
            Ok((current(&ctx, link.index).await?, set.changed))
        };
        let (iface, changed) = call
            .to_the_end(&self.ctx, &raw_name, &detail, work, Self::changed_word)
            .await?;
        Ok(Response::new(pb::SetPromiscuousResponse {
            interface: Some(iface.into()),
            outcome: Self::outcome(changed),
        }))
    }

    async fn set_up(
        &self,
        req: Request<pb::SetUpRequest>,
    ) -> Result<Response<pb::SetUpResponse>, Status> {
        let call = Call::of(&req)?;
        let raw_name = req.get_ref().name.clone();
        let detail = if req.get_ref().up { "up" } else { "down" };
        let raw = req.into_inner();
        let work = |ctx: Arc<Context>| async move {
            let r: SetUp = raw.try_into()?;
            let link = ctx.net.link(&r.name).await?;
            let changed = link.admin_up != r.up;
            if changed {
                ctx.net.set_up(link.index, r.up).await?;
            }
            Ok((current(&ctx, link.index).await?, changed))
        };
        let (iface, changed) = call
            .to_the_end(&self.ctx, &raw_name, detail, work, Self::changed_word)
            .await?;
        Ok(Response::new(pb::SetUpResponse {
            interface: Some(iface.into()),
            outcome: Self::outcome(changed),
        }))
    }

    async fn set_mtu(
        &self,
        req: Request<pb::SetMtuRequest>,
    ) -> Result<Response<pb::SetMtuResponse>, Status> {
        let call = Call::of(&req)?;
        let raw_name = req.get_ref().name.clone();
        let detail = format!("mtu {}", req.get_ref().mtu);
        let raw = req.into_inner();
        let work = |ctx: Arc<Context>| async move {
            let r: SetMtu = raw.try_into()?;
            let link = ctx.net.link(&r.name).await?;
            check_mtu_range(&link, r.mtu)?;
            let changed = link.mtu != r.mtu;
            if changed {
                ctx.net.set_mtu(link.index, r.mtu).await?;
            }
            Ok((current(&ctx, link.index).await?, changed))
        };
        let (iface, changed) = call
            .to_the_end(&self.ctx, &raw_name, &detail, work, Self::changed_word)
            .await?;
        Ok(Response::new(pb::SetMtuResponse {
            interface: Some(iface.into()),
            outcome: Self::outcome(changed),
        }))
    }
}

/// A link as it is now, with its promiscuous-mode lease.
async fn current(ctx: &Context, index: u32) -> Result<Interface, Error> {
    let mut iface = ctx.net.link_by_index(index).await?;
    iface.promisc_lease = ctx.leases.lease_of(index).await;
    Ok(iface)
}

/// One Watch event or end, as the wire has it.
fn watch_response(
    item: Result<WatchEvent, StreamEnd>,
) -> Result<pb::WatchInterfacesResponse, Status> {
    type Event = pb::watch_interfaces_response::Event;
    let event = match item {
        Ok(WatchEvent::Existing(iface)) => Event::Existing(iface.into()),
        Ok(WatchEvent::Synced) => Event::Synced(pb::Synced {}),
        Ok(WatchEvent::Added(iface)) => Event::Added(iface.into()),
        Ok(WatchEvent::Changed { interface, fields }) => Event::Changed(pb::InterfaceChanged {
            interface: Some(interface.into()),
            fields: fields.into_iter().map(str::to_owned).collect(),
        }),
        Ok(WatchEvent::Removed { index, name }) => {
            Event::Removed(pb::InterfaceRemoved { index, name })
        }
        Err(StreamEnd::KernelStreamEnded) => {
            return Err(Status::unavailable(
                "the kernel event stream ended; watch again to resubscribe",
            ));
        }
        Err(StreamEnd::Stopping) => return Err(WatchError::Stopping.into()),
    };
    Ok(pb::WatchInterfacesResponse { event: Some(event) })
}

/// Checks an MTU against the device's own limits (IFLA_MIN_MTU/MAX_MTU),
/// so the caller learns the allowed range instead of a bare EINVAL.
fn check_mtu_range(link: &Interface, mtu: u32) -> Result<(), ValidationError> {
    // Devices that report no maximum (0) accept anything above the minimum.
    let max_ok = link.max_mtu == 0 || mtu <= link.max_mtu;
    if mtu >= link.min_mtu && max_ok {
        return Ok(());
    }
    let range = if link.max_mtu == 0 {
        format!("at least {}", link.min_mtu)
    } else {
        format!("{}..={}", link.min_mtu, link.max_mtu)
    };
    Err(ValidationError::new(
        "mtu",
        mtu.to_string(),
        format!("is outside the MTU range of {} ({range})", link.name),
        format!("choose an MTU in {range}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mtu_range_error_names_the_device_range() {
        let link = linkherd_proto::model::interface_sample();
        assert!(check_mtu_range(&link, 9000).is_ok());
        let err = check_mtu_range(&link, 9001).expect_err("above max");
        assert_eq!(err.field, "mtu");
        assert_eq!(err.value, "9001");
        assert_eq!(
            err.problem,
            "is outside the MTU range of ens192 (68..=9000)"
        );
        assert_eq!(err.fix, "choose an MTU in 68..=9000");
        assert!(check_mtu_range(&link, 67).is_err());
    }
}
