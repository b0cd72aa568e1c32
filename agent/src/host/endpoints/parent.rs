//! An endpoint's parent: found (or its VLAN made), and checked for what the
//! kernel would refuse with a bare errno — a bridge port, a passthru
//! macvlan, a mode clash — explained with the fix.

use linkherd_proto::model::{
    EndpointSpec, Interface, LinkKind, MacvlanMode, Owner, ValidationError, VlanProtocol, VlanSpec,
    split_vlan_name,
};

use super::create::Creating;
use crate::host::{Endpoints, registry::Registry};
use crate::{error::Error, net::NetError};

impl Endpoints<'_> {
    /// The parent link, created when it is a missing VLAN `X.<id>` of an
    /// existing `X`; the bool says whether this network owns it (made it
    /// now, or an earlier endpoint of the network did — it goes with the
    /// network's last endpoint).
    pub(super) async fn endpoint_parent(
        &self,
        run: &mut Creating<'_>,
    ) -> Result<(Interface, bool), Error> {
        let spec = run.spec;
        let auto_owner = Owner::AutoVlan {
            network: spec.network.to_string(),
        };
        let known = match run.parents.get(spec.parent.as_str()) {
            Some(p) => Ok(p.clone()),
            None => self.h.parent(&spec.parent, "parent").await,
        };
        match known {
            Ok(p) => {
                let auto = self.h.agent.owner_of(p.alias.as_deref()) == Some(auto_owner);
                run.parents.insert(spec.parent.to_string(), p.clone());
                return Ok((p, auto));
            }
            Err(Error::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let Some((base, id)) = split_vlan_name(&spec.parent) else {
            return Err(parent_not_found(spec));
        };
        if self.h.net.link(&base).await.is_err() {
            return Err(parent_not_found(spec));
        }
        self.h.require_vlan().await?;
        self.record_intent(run).await?;
        let vlan = VlanSpec {
            parent: base,
            id,
            protocol: VlanProtocol::Ieee8021Q,
            name: spec.parent.clone(),
            mtu: None,
        };
        self.h.vlans().create_vlan_locked(&vlan, auto_owner).await?;
        let (net, name) = (self.h.net.clone(), spec.parent.clone());
        run.undo.push(format!("delete vlan {name}"), async move {
            if let Ok(l) = net.link(&name).await {
                let _ = net.del_link(l.index).await;
            }
        });
        Ok((self.h.parent(&spec.parent, "parent").await?, true))
    }

    /// Checks that the kernel would refuse with a bare errno, explained.
    pub(super) async fn check_parent(
        &self,
        spec: &EndpointSpec,
        parent: &Interface,
        reg: &Registry,
    ) -> Result<(), Error> {
        if let Some(master) = &parent.master {
            return Err(Error::Precondition(format!(
                "parent {} is a port of {master}: a NIC has one receive handler, and {master} holds it \
                 (the kernel answers EBUSY); attach the macvlan to {master} or to another NIC",
                parent.name
            )));
        }
        if spec.mode == MacvlanMode::Passthru {
            self.check_passthru(spec, parent, reg).await?;
        }
        if let Some(m) = spec.mtu.filter(|m| *m > parent.mtu) {
            return Err(ValidationError::new(
                "endpoint.mtu",
                m.to_string(),
                format!(
                    "is above the MTU of parent {} ({})",
                    parent.name, parent.mtu
                ),
                format!("use at most {}", parent.mtu),
            )
            .into());
        }
        if parent.mac == Some(spec.effective_mac()) {
            return Err(ValidationError::new(
                "endpoint.mac",
                spec.effective_mac().to_string(),
                format!("is the MAC of parent {}", parent.name),
                "give the endpoint a MAC of its own (or leave it out for a stable one)",
            )
            .into());
        }
        Ok(())
    }

    /// Passthru takes the whole parent: refused, naming them, when it has
    /// macvlans already (here or recorded in other namespaces). The only
    /// create that lists the host's links and records: the kernel's own
    /// answer (EINVAL) would not say which.
    pub(super) async fn check_passthru(
        &self,
        spec: &EndpointSpec,
        parent: &Interface,
        reg: &Registry,
    ) -> Result<(), Error> {
        // Not the endpoint itself: it is recorded before it is made.
        let mut users: Vec<String> = reg
            .all()
            .filter(|e| e.parent == parent.name)
            .filter(|e| {
                (e.network.as_str(), e.name.as_str()) != (spec.network.as_str(), spec.name.as_str())
            })
            .map(|e| format!("{}/{}", e.network, e.name))
            .collect();
        users.extend(
            self.h
                .net
                .links()
                .await?
                .into_iter()
                .filter(|l| l.kind == LinkKind::Macvlan && l.parent_index == parent.index)
                .map(|l| l.name),
        );
        if users.is_empty() {
            return Ok(());
        }
        Err(Error::Precondition(format!(
            "passthru takes the whole parent, and {} already has macvlans: {}",
            parent.name,
            users.join(", ")
        )))
    }

    /// Why a parent refused a macvlan, in words. EBUSY is mostly an ipvlan
    /// on the same NIC (a bridge or bond port is refused before): only then
    /// are the host's links listed, to name it.
    pub(super) async fn explain_parent_error(
        &self,
        e: NetError,
        spec: &EndpointSpec,
        parent: &Interface,
    ) -> Error {
        if !matches!(e, NetError::Busy { .. }) {
            return explain_parent_error(e, spec, parent);
        }
        let host = self.h.net.links().await.unwrap_or_default();
        match host
            .iter()
            .find(|l| l.kind == LinkKind::Ipvlan && l.parent_index == parent.index)
        {
            Some(ipvlan) => Error::Precondition(format!(
                "parent {} carries the ipvlan {}: macvlan and ipvlan cannot share a NIC (EBUSY); \
                 use another NIC or remove the ipvlan",
                parent.name, ipvlan.name
            )),
            None => explain_parent_error(e, spec, parent),
        }
    }
}

/// Explains what the kernel means when it refuses a macvlan.
fn explain_parent_error(e: NetError, spec: &EndpointSpec, parent: &Interface) -> Error {
    match e {
        NetError::Busy { .. } => Error::Precondition(format!(
            "parent {} refused the macvlan (EBUSY): it is a bridge or bond port or carries an ipvlan; \
             use another parent",
            parent.name
        )),
        NetError::Invalid { .. } if spec.mode == MacvlanMode::Passthru => {
            Error::Precondition(format!(
                "parent {} refused passthru mode: passthru needs a parent with no other macvlan",
                parent.name
            ))
        }
        NetError::Invalid { .. } => Error::Precondition(format!(
            "parent {} refused the macvlan: it is in passthru mode already, or not an Ethernet device",
            parent.name
        )),
        e => e.into(),
    }
}

/// A parent that is neither a link nor a VLAN of one.
fn parent_not_found(spec: &EndpointSpec) -> Error {
    Error::NotFound(format!(
        "parent interface {:?} not found on this host",
        spec.parent.as_str()
    ))
}
