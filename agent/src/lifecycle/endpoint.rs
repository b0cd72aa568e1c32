//! Macvlan endpoints in network namespaces.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::IpAddr,
    path::PathBuf,
    sync::Arc,
};

use ipnet::IpNet;
use linkherd_proto::{
    convert::EndpointSelector,
    model::{
        EndpointSpec, EndpointState, IfName, Interface, LinkDetails, LinkKind, MacvlanMode,
        NetnsRef, Owner, ValidationError, VlanProtocol, VlanSpec, split_vlan_name,
    },
};

use super::{
    Lifecycle, Outcome, group_of,
    registry::{Entry, Netns, Registry},
    undo::Rollback,
    vlan::describe,
};
use crate::{
    error::Error,
    net::{
        LinkSetup, NetError, NetOps, NewLink, NewLinkKind, Route,
        netns::{self, NsId, is_not_netns, not_a_netns},
    },
};

/// What a delete removed, in words ("endpoint mac_net10/b1 (eth0 in netns b1)").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed(pub Vec<String>);

fn default_route(v4: bool) -> IpNet {
    if v4 {
        IpNet::V4(ipnet::Ipv4Net::default())
    } else {
        IpNet::V6(ipnet::Ipv6Net::default())
    }
}

/// Addresses a user sets: IPv6 link-local ones are the kernel's own.
fn configured(addrs: &[IpNet]) -> BTreeSet<IpNet> {
    addrs
        .iter()
        .filter(|a| !matches!(a, IpNet::V6(v6) if v6.addr().segments()[0] & 0xffc0 == 0xfe80))
        .copied()
        .collect()
}

fn entry_netns(e: &Entry) -> NetnsRef {
    NetnsRef::from(&e.netns)
}

/// One create in progress: its spec, the records (locked), whether the
/// endpoint was unrecorded before, and what undoes it.
struct Creating<'a> {
    spec: &'a EndpointSpec,
    reg: &'a mut Registry,
    fresh: bool,
    undo: &'a mut Rollback,
}

/// What a delete by location found.
enum Located {
    /// This agent's endpoint there, as its records.
    Records(Vec<Entry>),
    /// An unowned macvlan, deleted by `--force`.
    Forced(Removed),
}

impl Lifecycle {
    /// Operations inside an endpoint's namespace, with a message that says
    /// what is missing.
    /// A namespace file given by path that is missing, unreadable or not a
    /// network namespace gets one answer, so it cannot tell which.
    pub(super) async fn ns_ops(&self, netns: &NetnsRef) -> Result<Arc<dyn NetOps>, Error> {
        let file = self.ns_file(netns);
        match self.net.netns(&file).await {
            Ok(ops) => Ok(ops),
            Err(e) if is_not_netns(&e) => Err(not_a_netns(&file).into()),
            Err(NetError::NotFound { .. }) if matches!(netns, NetnsRef::Path(_)) => {
                Err(not_a_netns(&file).into())
            }
            Err(NetError::NotFound { .. }) => Err(Error::NotFound(match netns {
                NetnsRef::Named(n) => {
                    format!(
                        "network namespace {n} does not exist; create it, or pass --create-netns"
                    )
                }
                NetnsRef::Pid(p) => format!("process {p} does not exist (no /proc/{p}/ns/net)"),
                NetnsRef::Path(p) => {
                    format!("network namespace file {} does not exist", p.display())
                }
            })),
            Err(e) => Err(e.into()),
        }
    }

    /// The identity of a target's namespace, read on the blocking pool;
    /// `None` when it cannot be opened (gone, or a fake kernel's).
    pub async fn netns_identity(&self, netns: &NetnsRef) -> Option<NsId> {
        let file = self.ns_file(netns);
        tokio::task::spawn_blocking(move || netns::identity(&file).ok())
            .await
            .ok()
            .flatten()
    }

    /// The identities of the namespaces this agent manages besides its own:
    /// its named ones (under its prefix) and those of its recorded
    /// endpoints (as recorded, or as they resolve now for older records).
    pub async fn managed_netns(&self) -> BTreeSet<NsId> {
        let entries: Vec<Entry> = self.registry.lock().await.all().cloned().collect();
        let mut refs: Vec<NetnsRef> = Vec::new();
        let mut out = BTreeSet::new();
        for e in &entries {
            match e.netns_id {
                Some(id) => {
                    out.insert(id);
                }
                None => refs.push(entry_netns(e)),
            }
        }
        for full in self.net.netns_names().await.unwrap_or_default() {
            if let Some(n) = full.strip_prefix(&self.netns_prefix) {
                refs.push(NetnsRef::Named(n.to_owned()));
            }
        }
        for r in refs {
            out.extend(self.netns_identity(&r).await);
        }
        out
    }

    /// The endpoint as the kernel has it, if its link is there. A recorded
    /// namespace identity that no longer matches (the process exited and
    /// its pid went to another) means the endpoint is gone.
    pub(super) async fn observe(&self, e: &Entry) -> Result<Option<EndpointState>, Error> {
        if let Some(want) = e.netns_id
            && self.netns_identity(&entry_netns(e)).await != Some(want)
        {
            return Ok(None);
        }
        let Ok(ops) = self.ns_ops(&entry_netns(e)).await else {
            return Ok(None);
        };
        let name = IfName::parse("ifname", &e.ifname)?;
        let link = match ops.link(&name).await {
            Ok(l) => l,
            Err(NetError::NotFound { .. }) => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        let gateway = ops
            .routes_via(link.index)
            .await?
            .into_iter()
            .find(|r| r.dest.prefix_len() == 0)
            .and_then(|r| r.gateway);
        Ok(self.state_of(e, link, gateway))
    }

    /// An endpoint's state from its link as read from the kernel; `None`
    /// when the link is not a macvlan.
    fn state_of(
        &self,
        e: &Entry,
        link: Interface,
        gateway: Option<IpAddr>,
    ) -> Option<EndpointState> {
        let Some(LinkDetails::Macvlan { mode, source_macs }) = link.details.clone() else {
            return None;
        };
        let owned = self.agent.owner_of(link.alias.as_deref())
            == Some(Owner::Endpoint {
                network: e.network.clone(),
                name: e.name.clone(),
            });
        Some(EndpointState {
            network: e.network.clone(),
            name: e.name.clone(),
            parent: e.parent.clone(),
            mode,
            netns: entry_netns(e),
            ifname: e.ifname.clone(),
            addresses: configured(&link.addresses).into_iter().collect(),
            gateway,
            mac: link.mac,
            mtu: link.mtu,
            source_macs,
            owned,
            parent_created: e.parent_created,
            netns_created: e.netns_created,
            interface: Some(link),
        })
    }

    /// Registry entries plus owned endpoints found in named namespaces that
    /// the registry does not know (state lost): the kernel is the truth.
    pub(super) async fn discover(&self, reg: &mut Registry) -> Result<Vec<Entry>, Error> {
        let known: BTreeSet<(String, String)> = reg
            .all()
            .map(|e| (e.network.clone(), e.name.clone()))
            .collect();
        let host = self.net.links().await?;
        for full in self.net.netns_names().await? {
            // Only this agent's namespaces (several agents may share a
            // machine, as in a lab).
            let Some(ns) = full.strip_prefix(&self.netns_prefix).map(str::to_owned) else {
                continue;
            };
            let Ok(ops) = self
                .net
                .netns(&self.ns_file(&NetnsRef::Named(ns.clone())))
                .await
            else {
                continue;
            };
            let Ok(links) = ops.links().await else {
                continue;
            };
            for l in links {
                let Some(Owner::Endpoint { network, name }) =
                    self.agent.owner_of(l.alias.as_deref())
                else {
                    continue;
                };
                if known.contains(&(network.clone(), name.clone())) {
                    continue;
                }
                let parent = host.iter().find(|h| h.index == l.parent_index);
                let parent_created = parent
                    .and_then(|p| self.agent.owner_of(p.alias.as_deref()))
                    .is_some_and(|o| matches!(o, Owner::AutoVlan { network: n } if n == network));
                tracing::info!(
                    network,
                    name,
                    netns = ns,
                    "re-registering an endpoint found in the kernel"
                );
                reg.insert(Entry {
                    network,
                    name,
                    netns: Netns::Name(ns.clone()),
                    ifname: l.name.clone(),
                    parent: parent.map(|p| p.name.clone()).unwrap_or_default(),
                    parent_created,
                    netns_created: false,
                    netns_id: None,
                })
                .await?;
            }
        }
        Ok(reg.all().cloned().collect())
    }

    /// Creates an endpoint: the macvlan directly in its namespace, addresses,
    /// announcements, up, default route. Identical existing: `Unchanged`.
    /// Any failure undoes everything done for this request.
    pub async fn create_endpoint(
        &self,
        spec: &EndpointSpec,
    ) -> Result<(EndpointState, Outcome), Error> {
        // A path that is no usable namespace is refused before the lock:
        // nothing waits behind it.
        let ns = self.ns_ops(&spec.netns).await;
        if let Err(e @ Error::Invalid(_)) = ns {
            return Err(e);
        }
        let mut reg = self.registry.lock().await;
        if let Some(e) = reg.get(spec.network.as_str(), spec.name.as_str())
            && (entry_netns(e) != spec.netns || e.ifname != spec.ifname.as_str())
        {
            return Err(Error::Exists(format!(
                "endpoint {}/{} already exists as {} in {}; delete it first to move it",
                spec.network,
                spec.name,
                e.ifname,
                entry_netns(e)
            )));
        }
        let fresh = reg.get(spec.network.as_str(), spec.name.as_str()).is_none();
        let mut undo = Rollback::default();
        let mut run = Creating {
            spec,
            reg: &mut reg,
            fresh,
            undo: &mut undo,
        };
        let res = self.create_endpoint_steps(&mut run, ns).await;
        match res {
            Ok(done) => {
                undo.commit();
                Ok(done)
            }
            Err(e) => {
                undo.run().await;
                if fresh
                    && let Err(err) = reg.remove(spec.network.as_str(), spec.name.as_str()).await
                {
                    tracing::warn!(error = %err, "cannot remove the record of an endpoint not made");
                }
                Err(e)
            }
        }
    }

    /// The steps of a create. The endpoint is recorded before the kernel is
    /// touched for it — before its namespace or VLAN parent is made, else
    /// (the usual case: one durable write) once, complete, before its link
    /// is — and a record that cannot be written fails the request with
    /// nothing changed.
    async fn create_endpoint_steps(
        &self,
        run: &mut Creating<'_>,
        ns: Result<Arc<dyn NetOps>, Error>,
    ) -> Result<(EndpointState, Outcome), Error> {
        let spec = run.spec;
        let (ops, netns_created) = self.endpoint_netns(run, ns).await?;
        match ops.link(&spec.ifname).await {
            Ok(existing) => return self.existing_endpoint(spec, &existing, &ops, run.reg).await,
            Err(NetError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let (parent, parent_created) = self.endpoint_parent(run).await?;
        self.check_parent(spec, &parent, run.reg).await?;
        let mut entry = self.entry(spec, parent_created, netns_created);
        entry.netns_id = self.netns_identity(&spec.netns).await;
        run.reg.insert(entry.clone()).await?;
        let link = self
            .add_endpoint_link(spec, &parent, &ops, run.undo)
            .await?;
        let link = self
            .configure_endpoint(spec, &parent, ops.as_ref(), &link)
            .await?;
        let state = self.state_of(&entry, link, spec.gateway).ok_or_else(|| {
            Error::NotFound(format!("endpoint {}/{} vanished", spec.network, spec.name))
        })?;
        Ok((state, Outcome::Created))
    }

    /// The endpoint's namespace, created (with its loopback up, as
    /// containers expect) when the spec asks for a named one that does not
    /// exist yet; the bool says whether it was created.
    async fn endpoint_netns(
        &self,
        run: &mut Creating<'_>,
        ns: Result<Arc<dyn NetOps>, Error>,
    ) -> Result<(Arc<dyn NetOps>, bool), Error> {
        let spec = run.spec;
        match ns {
            Ok(ops) => Ok((ops, false)),
            Err(Error::NotFound(_)) if spec.create_netns => {
                let NetnsRef::Named(name) = &spec.netns else {
                    // Validation only allows create_netns with a name.
                    return Err(Error::Precondition(
                        "only a named namespace can be created".into(),
                    ));
                };
                let name = format!("{}{name}", self.netns_prefix);
                self.record_intent(run).await?;
                self.net.create_netns(&name).await?;
                let (net, n) = (self.net.clone(), name.clone());
                run.undo.push(format!("delete netns {n}"), async move {
                    if let Err(e) = net.delete_netns(&n).await {
                        tracing::error!(error = %e, "undo: cannot delete netns");
                    }
                });
                let ops = self.ns_ops(&spec.netns).await?;
                ops.set_up(1, true).await?;
                Ok((ops, true))
            }
            Err(e) => Err(e),
        }
    }

    /// The interface name is taken inside the namespace: by this very
    /// endpoint with the same settings (unchanged, and recorded if it was
    /// not), or by anything else (refused, naming it).
    async fn existing_endpoint(
        &self,
        spec: &EndpointSpec,
        existing: &Interface,
        ops: &Arc<dyn NetOps>,
        reg: &mut Registry,
    ) -> Result<(EndpointState, Outcome), Error> {
        let mine = Owner::endpoint(&spec.network, &spec.name);
        if self.agent.owner_of(existing.alias.as_deref()).as_ref() != Some(&mine) {
            return Err(Error::Exists(format!(
                "interface {} already exists in {} ({}) and is not endpoint {}/{}; choose another --ifname",
                spec.ifname,
                spec.netns,
                describe(existing),
                spec.network,
                spec.name
            )));
        }
        let diffs = self.differences(spec, existing, ops.as_ref()).await?;
        if !diffs.is_empty() {
            return Err(Error::Exists(format!(
                "endpoint {}/{} exists with different settings: {}; delete it first to change them",
                spec.network,
                spec.name,
                diffs.join(", ")
            )));
        }
        if reg.get(spec.network.as_str(), spec.name.as_str()).is_none() {
            let mut entry = self.entry(spec, false, false);
            entry.netns_id = self.netns_identity(&spec.netns).await;
            reg.insert(entry).await?;
        }
        let entry = reg.get(spec.network.as_str(), spec.name.as_str()).cloned();
        let state = match entry {
            Some(e) => self.observe(&e).await?,
            None => None,
        };
        state.map(|s| (s, Outcome::Unchanged)).ok_or_else(|| {
            Error::NotFound(format!("endpoint {}/{} vanished", spec.network, spec.name))
        })
    }

    /// The parent link, created when it is a missing VLAN `X.<id>` of an
    /// existing `X`; the bool says whether this network owns it (made it
    /// now, or an earlier endpoint of the network did — it goes with the
    /// network's last endpoint).
    async fn endpoint_parent(&self, run: &mut Creating<'_>) -> Result<(Interface, bool), Error> {
        let spec = run.spec;
        let auto_owner = Owner::AutoVlan {
            network: spec.network.to_string(),
        };
        match self.parent(&spec.parent, "parent").await {
            Ok(p) => {
                let auto = self.agent.owner_of(p.alias.as_deref()) == Some(auto_owner);
                return Ok((p, auto));
            }
            Err(Error::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let Some((base, id)) = split_vlan_name(&spec.parent) else {
            return Err(parent_not_found(spec));
        };
        if self.net.link(&base).await.is_err() {
            return Err(parent_not_found(spec));
        }
        self.require_vlan().await?;
        self.record_intent(run).await?;
        let vlan = VlanSpec {
            parent: base,
            id,
            protocol: VlanProtocol::Ieee8021Q,
            name: spec.parent.clone(),
            mtu: None,
        };
        self.create_vlan_locked(&vlan, auto_owner).await?;
        let (net, name) = (self.net.clone(), spec.parent.clone());
        run.undo.push(format!("delete vlan {name}"), async move {
            if let Ok(l) = net.link(&name).await {
                let _ = net.del_link(l.index).await;
            }
        });
        Ok((self.parent(&spec.parent, "parent").await?, true))
    }

    /// The macvlan, created directly inside the namespace with its MAC,
    /// mark and group in one request.
    async fn add_endpoint_link(
        &self,
        spec: &EndpointSpec,
        parent: &Interface,
        ops: &Arc<dyn NetOps>,
        undo: &mut Rollback,
    ) -> Result<Interface, Error> {
        let new = NewLink {
            name: spec.ifname.clone(),
            kind: NewLinkKind::Macvlan {
                parent_index: parent.index,
                mode: spec.mode,
                source_macs: spec.source_macs.clone(),
            },
            mtu: spec.mtu,
            mac: Some(spec.effective_mac()),
            alias: self.agent.mark(&Owner::endpoint(&spec.network, &spec.name)),
            group: group_of(spec.network.as_str()),
            target: Some(self.ns_file(&spec.netns)),
        };
        if let Err(e) = self.net.add_link(&new).await {
            return Err(self.explain_parent_error(e, spec, parent).await);
        }
        let (inside, ifname) = (ops.clone(), spec.ifname.clone());
        undo.push(format!("delete {ifname} in {}", spec.netns), async move {
            if let Ok(l) = inside.link(&ifname).await {
                let _ = inside.del_link(l.index).await;
            }
        });
        Ok(ops.link(&spec.ifname).await?)
    }

    /// A new endpoint's record, written before its namespace or VLAN
    /// parent is made (nothing to write when it was there before).
    async fn record_intent(&self, run: &mut Creating<'_>) -> Result<(), Error> {
        if run.fresh {
            run.reg.insert(self.entry(run.spec, false, false)).await?;
        }
        Ok(())
    }

    /// Announcements on, then addresses, up and default route in one call;
    /// the link as it is then.
    async fn configure_endpoint(
        &self,
        spec: &EndpointSpec,
        parent: &Interface,
        ops: &dyn NetOps,
        link: &Interface,
    ) -> Result<Interface, Error> {
        ops.enable_announce(&spec.ifname).await?;
        let mut setup = LinkSetup {
            addresses: spec.addresses.clone(),
            up: true,
            routes: Vec::new(),
        };
        if let Some(gw) = spec.gateway {
            setup
                .routes
                .push(self.default_route(ops, &spec.netns, gw, link.index).await?);
        }
        ops.setup_link(link.index, &setup)
            .await
            .map_err(|e| match e {
                NetError::Busy { .. } => Error::Precondition(format!(
                    "MAC {} is already in use on parent {} by another macvlan; give the endpoint another MAC",
                    spec.effective_mac(),
                    parent.name
                )),
                e => e.into(),
            })
    }

    fn entry(&self, spec: &EndpointSpec, parent_created: bool, netns_created: bool) -> Entry {
        Entry {
            network: spec.network.to_string(),
            name: spec.name.to_string(),
            netns: Netns::from(&spec.netns),
            ifname: spec.ifname.to_string(),
            parent: spec.parent.to_string(),
            parent_created,
            netns_created,
            netns_id: None,
        }
    }

    /// The default route via `gw` for link `index`, refused when the
    /// namespace has one already.
    async fn default_route(
        &self,
        ops: &dyn NetOps,
        netns: &NetnsRef,
        gw: IpAddr,
        index: u32,
    ) -> Result<Route, Error> {
        let dest = default_route(gw.is_ipv4());
        if let Some(r) = ops.routes().await?.into_iter().find(|r| r.dest == dest) {
            return Err(Error::Precondition(format!(
                "{netns} already has a default route{}; remove it, or leave the gateway out",
                r.gateway.map(|g| format!(" via {g}")).unwrap_or_default()
            )));
        }
        Ok(Route {
            dest,
            gateway: Some(gw),
            index,
        })
    }

    /// Checks that the kernel would refuse with a bare errno, explained.
    async fn check_parent(
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
    async fn check_passthru(
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
            self.net
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
    async fn explain_parent_error(
        &self,
        e: NetError,
        spec: &EndpointSpec,
        parent: &Interface,
    ) -> Error {
        if !matches!(e, NetError::Busy { .. }) {
            return explain_parent_error(e, spec, parent);
        }
        let host = self.net.links().await.unwrap_or_default();
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

    /// How an existing endpoint differs from a spec, in words.
    pub(super) async fn differences(
        &self,
        spec: &EndpointSpec,
        link: &Interface,
        ops: &dyn NetOps,
    ) -> Result<Vec<String>, Error> {
        let mut d = Vec::new();
        match &link.details {
            Some(LinkDetails::Macvlan { mode, source_macs }) => {
                if *mode != spec.mode {
                    d.push(format!(
                        "mode {} (asked {})",
                        mode.as_str(),
                        spec.mode.as_str()
                    ));
                }
                if *source_macs != spec.source_macs {
                    d.push("source MAC list".to_owned());
                }
            }
            _ => d.push(format!("it is {}", describe(link))),
        }
        if link.mac != Some(spec.effective_mac()) {
            d.push(format!(
                "mac {} (asked {})",
                link.mac.map(|m| m.to_string()).unwrap_or_default(),
                spec.effective_mac()
            ));
        }
        if let Some(m) = spec.mtu.filter(|m| *m != link.mtu) {
            d.push(format!("mtu {} (asked {m})", link.mtu));
        }
        let have = configured(&link.addresses);
        let want: BTreeSet<IpNet> = spec.addresses.iter().copied().collect();
        if have != want {
            let fmt = |s: &BTreeSet<IpNet>| {
                s.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            d.push(format!(
                "addresses [{}] (asked [{}])",
                fmt(&have),
                fmt(&want)
            ));
        }
        let parent_index = self.net.link(&spec.parent).await.map(|p| p.index).ok();
        if parent_index != Some(link.parent_index) {
            d.push(format!("parent is not {}", spec.parent));
        }
        let gw = ops
            .routes_via(link.index)
            .await?
            .into_iter()
            .find(|r| r.dest.prefix_len() == 0)
            .and_then(|r| r.gateway);
        if gw != spec.gateway {
            let show = |g: Option<IpAddr>| g.map_or("none".to_owned(), |g| g.to_string());
            d.push(format!(
                "gateway {} (asked {})",
                show(gw),
                show(spec.gateway)
            ));
        }
        Ok(d)
    }

    /// Deletes endpoints, then what linkherd created only for them: an
    /// auto-created VLAN parent without endpoints, a namespace it created.
    pub async fn delete_endpoints(
        &self,
        sel: &EndpointSelector,
        force: bool,
    ) -> Result<Removed, Error> {
        let mut reg = self.registry.lock().await;
        let all = self.discover(&mut reg).await?;
        let targets: Vec<Entry> = match sel {
            EndpointSelector::Named { network, name } => all
                .into_iter()
                .filter(|e| e.network == network.as_str() && e.name == name.as_str())
                .collect(),
            EndpointSelector::Network(network) => all
                .into_iter()
                .filter(|e| e.network == network.as_str())
                .collect(),
            EndpointSelector::Located { netns, ifname } => {
                match self.located(all, netns, ifname, force).await? {
                    Located::Records(t) => t,
                    Located::Forced(removed) => return Ok(removed),
                }
            }
        };
        if targets.is_empty() {
            return Err(Error::NotFound(match sel {
                EndpointSelector::Named { network, name } => {
                    format!("endpoint {network}/{name} not found on this host")
                }
                EndpointSelector::Network(n) => format!("no endpoints of network {n} on this host"),
                EndpointSelector::Located { netns, ifname } => {
                    format!("{ifname} in {netns} is linkherd's but not in its records")
                }
            }));
        }
        let mut removed = Removed::default();
        self.remove_links(&targets, &mut removed).await?;
        let keys: Vec<(&str, &str)> = targets
            .iter()
            .map(|e| (e.network.as_str(), e.name.as_str()))
            .collect();
        reg.remove_many(&keys).await?;
        self.remove_leftovers(&targets, &reg, &mut removed).await;
        Ok(removed)
    }

    /// The records of the linkherd endpoint at `ifname` in `netns` — or,
    /// with `force`, that unowned macvlan deleted there and then.
    async fn located(
        &self,
        all: Vec<Entry>,
        netns: &NetnsRef,
        ifname: &IfName,
        force: bool,
    ) -> Result<Located, Error> {
        let ops = self.ns_ops(netns).await?;
        let link = match ops.link(ifname).await {
            Ok(l) => l,
            Err(NetError::NotFound { .. }) => {
                return Err(Error::NotFound(format!(
                    "interface {ifname} not found in {netns}"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        match self.agent.owner_of(link.alias.as_deref()) {
            Some(Owner::Endpoint { network, name }) => Ok(Located::Records(
                all.into_iter()
                    .filter(|e| e.network == network && e.name == name)
                    .collect(),
            )),
            _ if let Some(other) = self.agent.other_agent(link.alias.as_deref()) => {
                Err(Error::Precondition(format!(
                    "{ifname} in {netns} ({}) belongs to another linkherd agent ({other}) \
                     on this kernel; delete it through that agent (--force does not \
                     take another agent's links)",
                    describe(&link)
                )))
            }
            _ if !force => Err(Error::Precondition(format!(
                "{ifname} in {netns} ({}) was not created by linkherd; pass --force to delete it anyway",
                describe(&link)
            ))),
            // --force deletes a macvlan nobody owns, never another
            // kind of link (a veth, a bridge, the host's NIC).
            _ if !matches!(link.details, Some(LinkDetails::Macvlan { .. })) => {
                Err(Error::Precondition(format!(
                    "{ifname} in {netns} ({}) is not a macvlan; --force deletes only \
                     macvlans, so it is left alone",
                    describe(&link)
                )))
            }
            _ => {
                ops.del_link(link.index).await?;
                Ok(Located::Forced(Removed(vec![format!(
                    "{ifname} in {netns} (forced)"
                )])))
            }
        }
    }

    /// Deletes the targets' links, a whole network's links in a namespace
    /// with one group request when nothing else shares the group.
    async fn remove_links(&self, targets: &[Entry], removed: &mut Removed) -> Result<(), Error> {
        let mut by_ns: BTreeMap<&Netns, Vec<&Entry>> = BTreeMap::new();
        for e in targets {
            by_ns.entry(&e.netns).or_default().push(e);
        }
        for (ns, entries) in by_ns {
            let netns = NetnsRef::from(ns);
            let Ok(ops) = self.ns_ops(&netns).await else {
                // The namespace is gone, and its links with it.
                for e in entries {
                    removed.0.push(format!(
                        "endpoint {}/{} (its {netns} was already gone)",
                        e.network, e.name
                    ));
                }
                continue;
            };
            let links = ops.links().await?;
            let network = &entries[0].network;
            let group = group_of(network);
            let in_group: Vec<&Interface> = links.iter().filter(|l| l.group == group).collect();
            let whole_group = entries.len() > 1
                && entries.iter().all(|e| e.network == *network)
                && in_group.len() == entries.len()
                && in_group.iter().all(|l| {
                    matches!(self.agent.owner_of(l.alias.as_deref()), Some(Owner::Endpoint { network: n, .. }) if n == *network)
                });
            if whole_group {
                ops.del_group(group).await?;
            } else {
                let by_name: HashMap<&str, &Interface> =
                    links.iter().map(|l| (l.name.as_str(), l)).collect();
                for e in &entries {
                    if let Some(l) = by_name.get(e.ifname.as_str()) {
                        match ops.del_link(l.index).await {
                            Ok(()) | Err(NetError::NotFound { .. }) => {}
                            Err(err) => return Err(err.into()),
                        }
                    }
                }
            }
            for e in entries {
                removed.0.push(format!(
                    "endpoint {}/{} ({} in {netns})",
                    e.network, e.name, e.ifname
                ));
            }
        }
        Ok(())
    }

    /// Namespaces and VLAN parents linkherd created for endpoints that are
    /// now gone. Failures are logged, not returned: the endpoints are gone.
    async fn remove_leftovers(&self, targets: &[Entry], reg: &Registry, removed: &mut Removed) {
        let mut parents = BTreeSet::new();
        let mut namespaces = BTreeSet::new();
        for e in targets {
            if e.parent_created {
                parents.insert(e.parent.clone());
            }
            if let (true, Netns::Name(n)) = (e.netns_created, &e.netns) {
                namespaces.insert(n.clone());
            }
        }
        let in_use: BTreeSet<&Netns> = reg.all().map(|e| &e.netns).collect();
        for n in namespaces {
            if in_use.contains(&Netns::Name(n.clone())) {
                continue;
            }
            let ops = match self
                .net
                .netns(&self.ns_file(&NetnsRef::Named(n.clone())))
                .await
            {
                Ok(ops) => ops,
                Err(e) => {
                    tracing::warn!(netns = n, error = %e, "cannot inspect a namespace linkherd created");
                    continue;
                }
            };
            let others: Vec<String> = match ops.links().await {
                Ok(links) => links
                    .into_iter()
                    .filter(|l| l.kind != LinkKind::Loopback)
                    .map(|l| l.name)
                    .collect(),
                Err(e) => vec![format!("(cannot list links: {e})")],
            };
            drop(ops);
            if !others.is_empty() {
                tracing::info!(netns = n, links = ?others, "keeping a namespace linkherd created: it has other links");
                continue;
            }
            match self
                .net
                .delete_netns(&format!("{}{n}", self.netns_prefix))
                .await
            {
                Ok(()) => removed.0.push(format!("netns {n}")),
                Err(e) => {
                    tracing::error!(netns = n, error = %e, "cannot delete a namespace linkherd created")
                }
            }
        }
        for p in parents {
            if reg.all().any(|e| e.parent == p) {
                continue;
            }
            let Ok(name) = IfName::parse("parent", &p) else {
                continue;
            };
            let Ok(link) = self.net.link(&name).await else {
                continue;
            };
            let auto = matches!(
                self.agent.owner_of(link.alias.as_deref()),
                Some(Owner::AutoVlan { .. })
            );
            if !auto {
                continue;
            }
            match self.net.del_link(link.index).await {
                Ok(()) => removed.0.push(format!("vlan {p}")),
                Err(e) => {
                    tracing::error!(vlan = p, error = %e, "cannot delete a VLAN linkherd created")
                }
            }
        }
    }

    /// Every endpoint on the host, as the kernel has it. Records of
    /// endpoints that are gone (their process exited) are dropped.
    /// Names of the endpoints of `network` this host has, from the registry
    /// (nothing observed).
    pub async fn endpoint_names(&self, network: &str) -> Vec<String> {
        self.registry
            .lock()
            .await
            .all()
            .filter(|e| e.network == network)
            .map(|e| e.name.clone())
            .collect()
    }

    /// Endpoints of `network` as observed — those in `names`, or all of
    /// them — looking only at those (a transaction removing many endpoints
    /// must not observe the whole host once per endpoint).
    pub async fn endpoints_of(
        &self,
        network: &str,
        names: Option<&[&str]>,
    ) -> Result<Vec<EndpointState>, Error> {
        let names: Option<BTreeSet<&str>> = names.map(|n| n.iter().copied().collect());
        let entries: Vec<_> = self
            .registry
            .lock()
            .await
            .all()
            .filter(|e| {
                e.network == network && names.as_ref().is_none_or(|n| n.contains(e.name.as_str()))
            })
            .cloned()
            .collect();
        Ok(self
            .observe_many(&entries)
            .await?
            .into_iter()
            .flatten()
            .collect())
    }

    /// [`Self::observe`] for many endpoints, in their order: those that
    /// share a namespace are read with one listing of its links and one of
    /// its routes, not a few requests each (a thousand endpoints in one
    /// namespace cost two dumps, not four thousand round trips).
    pub(super) async fn observe_many(
        &self,
        entries: &[Entry],
    ) -> Result<Vec<Option<EndpointState>>, Error> {
        let mut groups: HashMap<PathBuf, Vec<usize>> = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            groups
                .entry(self.ns_file(&entry_netns(e)))
                .or_default()
                .push(i);
        }
        let mut out = vec![None; entries.len()];
        for members in groups.into_values() {
            if let [one] = members[..] {
                out[one] = self.observe(&entries[one]).await?;
                continue;
            }
            let group: Vec<&Entry> = members.iter().map(|&i| &entries[i]).collect();
            for (i, state) in members.iter().zip(self.observe_in(&group).await?) {
                out[*i] = state;
            }
        }
        Ok(out)
    }

    /// Endpoints that share one namespace, from one listing of its links
    /// and one of its routes.
    async fn observe_in(&self, group: &[&Entry]) -> Result<Vec<Option<EndpointState>>, Error> {
        let Some(first) = group.first() else {
            return Ok(Vec::new());
        };
        let id = self.netns_identity(&entry_netns(first)).await;
        let Ok(ops) = self.ns_ops(&entry_netns(first)).await else {
            return Ok(vec![None; group.len()]);
        };
        let mut links: HashMap<String, Interface> = ops
            .links()
            .await?
            .into_iter()
            .map(|l| (l.name.clone(), l))
            .collect();
        let gateways: HashMap<u32, IpAddr> = ops
            .routes()
            .await?
            .into_iter()
            .filter(|r| r.dest.prefix_len() == 0)
            .filter_map(|r| Some((r.index, r.gateway?)))
            .collect();
        Ok(group
            .iter()
            .map(|e| {
                if e.netns_id.is_some_and(|want| id != Some(want)) {
                    return None;
                }
                let link = links.remove(&e.ifname)?;
                let gateway = gateways.get(&link.index).copied();
                self.state_of(e, link, gateway)
            })
            .collect())
    }

    pub async fn list_endpoints(&self) -> Result<Vec<EndpointState>, Error> {
        let mut reg = self.registry.lock().await;
        let mut out = Vec::new();
        let entries = self.discover(&mut reg).await?;
        let observed = self.observe_many(&entries).await?;
        for (e, state) in entries.into_iter().zip(observed) {
            match state {
                Some(s) => out.push(s),
                None => {
                    tracing::info!(
                        network = e.network,
                        name = e.name,
                        "endpoint is gone; forgetting it"
                    );
                    // A read does not fail for this: it is tried again
                    // on the next one.
                    if let Err(err) = reg.remove(&e.network, &e.name).await {
                        tracing::warn!(error = %err, "cannot forget a gone endpoint");
                    }
                }
            }
        }
        Ok(out)
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
