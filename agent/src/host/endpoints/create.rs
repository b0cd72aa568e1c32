//! Creating one endpoint, or a transaction's endpoints in a row: records
//! first, then the kernel, each step undone when a later one fails.

use std::{collections::BTreeMap, net::IpAddr, sync::Arc};

use linkherd_proto::model::{EndpointSpec, EndpointState, Interface, NetnsRef, Owner};
use tracing::Instrument;

use super::{default_route, entry_netns};
use crate::host::{
    Endpoints, Outcome, group_of,
    registry::{Entry, Netns, Registry},
    undo::Rollback,
    vlans::describe,
};
use crate::{
    error::Error,
    net::{LinkSetup, NetError, NetOps, NewLink, NewLinkKind, Route},
};

/// Each spec's namespace (or why there is none), and whether it was
/// unrecorded.
type NsAndFresh = (Vec<Result<Arc<dyn NetOps>, Error>>, Vec<bool>);

/// One create in progress: its spec, the records (locked), whether the
/// endpoint was unrecorded before, and what undoes it.
pub(super) struct Creating<'a> {
    pub(super) spec: &'a EndpointSpec,
    pub(super) reg: &'a mut Registry,
    pub(super) fresh: bool,
    pub(super) undo: &'a mut Rollback,
    /// Parents looked up by the creates before it in the same batch (their
    /// lookups are not repeated).
    pub(super) parents: &'a mut BTreeMap<String, Interface>,
}

impl Endpoints<'_> {
    /// Creates an endpoint: the macvlan directly in its namespace, addresses,
    /// announcements, up, default route. Identical existing: `Unchanged`.
    /// Any failure undoes everything done for this request.
    pub async fn create_endpoint(
        &self,
        spec: &EndpointSpec,
    ) -> Result<(EndpointState, Outcome), Error> {
        // A path that is no usable namespace is refused before the lock:
        // nothing waits behind it.
        let ns = self.h.ns_ops(&spec.netns).await;
        if let Err(e @ Error::Invalid(_)) = ns {
            return Err(e);
        }
        let mut reg = self
            .h
            .registry
            .lock()
            .instrument(tracing::debug_span!("create.lock"))
            .await;
        let fresh = reg.get(spec.network.as_str(), spec.name.as_str()).is_none();
        self.create_locked(spec, ns, &mut reg, fresh, &mut BTreeMap::new())
            .await
    }

    /// Creates `specs` in order under one hold of the registry lock (a
    /// transaction's batch, at most a few hundred), as [`create_endpoint`]
    /// would one by one, but with the records of all the new ones written
    /// first as one group commit, before the kernel is touched for any.
    /// Stops at the first failure, which it returns with its index; the
    /// records of the endpoints not tried are removed again. `between(k)`
    /// runs after the `k`-th create when another follows.
    ///
    /// [`create_endpoint`]: Self::create_endpoint
    pub async fn create_endpoints(
        &self,
        specs: &[&EndpointSpec],
        mut between: impl FnMut(usize),
    ) -> (Vec<Outcome>, Option<(usize, Error)>) {
        let mut reg = self
            .h
            .registry
            .lock()
            .instrument(tracing::debug_span!("create.lock"))
            .await;
        let (nss, fresh) = match self
            .record_all(specs, &mut reg)
            .instrument(tracing::debug_span!("create.records"))
            .await
        {
            Ok(v) => v,
            Err(e) => return (Vec::new(), Some((0, e))),
        };
        let mut outcomes = Vec::with_capacity(specs.len());
        let mut parents = BTreeMap::new();
        for (k, (spec, ns)) in specs.iter().zip(nss).enumerate() {
            match self
                .create_locked(spec, ns, &mut reg, fresh[k], &mut parents)
                .await
            {
                Ok((_, outcome)) => outcomes.push(outcome),
                Err(e) => {
                    self.unrecord_untried(&specs[k + 1..], &fresh[k + 1..], &mut reg)
                        .await;
                    return (outcomes, Some((k, e)));
                }
            }
            if k + 1 < specs.len() {
                between(k);
            }
        }
        (outcomes, None)
    }

    /// Each spec's namespace, and whether it is unrecorded; the records of
    /// those (whose namespace is there, or is to be made) written as one
    /// group, complete as [`Self::create_endpoint_steps`] would write them.
    async fn record_all(
        &self,
        specs: &[&EndpointSpec],
        reg: &mut Registry,
    ) -> Result<NsAndFresh, Error> {
        let mut nss = Vec::with_capacity(specs.len());
        let mut fresh = Vec::with_capacity(specs.len());
        let mut intents: BTreeMap<(&str, &str), Entry> = BTreeMap::new();
        for spec in specs {
            let ns = self.h.ns_ops(&spec.netns).await;
            let new = reg.get(spec.network.as_str(), spec.name.as_str()).is_none();
            if new && (ns.is_ok() || spec.create_netns) {
                let mut entry = self.entry(spec, false, false);
                if ns.is_ok() {
                    entry.netns_id = self.h.netns_identity(&spec.netns).await;
                }
                intents.insert((spec.network.as_str(), spec.name.as_str()), entry);
            }
            nss.push(ns);
            fresh.push(new);
        }
        reg.insert_many(intents.into_values().collect()).await?;
        Ok((nss, fresh))
    }

    /// Removes the records [`Self::record_all`] wrote for endpoints a
    /// failure left untried (logged when the disk refuses: the records of
    /// links that were never made are found stale at the next start).
    async fn unrecord_untried(&self, specs: &[&EndpointSpec], fresh: &[bool], reg: &mut Registry) {
        let keys: Vec<(&str, &str)> = specs
            .iter()
            .zip(fresh)
            .filter(|(_, f)| **f)
            .map(|(s, _)| (s.network.as_str(), s.name.as_str()))
            .collect();
        if let Err(e) = reg.remove_many(&keys).await {
            tracing::warn!(error = %e, "cannot remove the records of endpoints not made");
        }
    }

    /// One create with the registry lock held; `fresh`: the endpoint was
    /// unrecorded when the request came (its record goes when it fails);
    /// `parents`: those the batch looked up already.
    pub(in crate::host) async fn create_locked(
        &self,
        spec: &EndpointSpec,
        ns: Result<Arc<dyn NetOps>, Error>,
        reg: &mut Registry,
        fresh: bool,
        parents: &mut BTreeMap<String, Interface>,
    ) -> Result<(EndpointState, Outcome), Error> {
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
        let mut undo = Rollback::default();
        let mut run = Creating {
            spec,
            reg,
            fresh,
            undo: &mut undo,
            parents,
        };
        let res = self
            .create_endpoint_steps(&mut run, ns)
            .instrument(tracing::debug_span!("create.endpoint"))
            .await;
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
        let existing = ops
            .link(&spec.ifname)
            .instrument(tracing::debug_span!("create.lookup"))
            .await;
        match existing {
            Ok(existing) => return self.existing_endpoint(spec, &existing, &ops, run.reg).await,
            Err(NetError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let (parent, parent_created) = async {
            let (parent, created) = self.endpoint_parent(run).await?;
            self.check_parent(spec, &parent, run.reg).await?;
            Ok::<_, Error>((parent, created))
        }
        .instrument(tracing::debug_span!("create.parent"))
        .await?;
        let mut entry = self.entry(spec, parent_created, netns_created);
        // Read just now when the batch recorded it (a record that was there
        // before the request may be of an older namespace: read again).
        let known_id = match run.reg.get(spec.network.as_str(), spec.name.as_str()) {
            Some(e) if run.fresh => e.netns_id,
            _ => None,
        };
        async {
            entry.netns_id = match known_id {
                Some(id) => Some(id),
                None => self.h.netns_identity(&spec.netns).await,
            };
            run.reg.insert(entry.clone()).await
        }
        .instrument(tracing::debug_span!("create.record"))
        .await?;
        let link = self
            .add_endpoint_link(spec, &parent, &ops, run.undo)
            .instrument(tracing::debug_span!("create.link"))
            .await?;
        let link = self
            .configure_endpoint(spec, &parent, ops.as_ref(), &link)
            .instrument(tracing::debug_span!("create.configure"))
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
                let name = format!("{}{name}", self.h.netns_prefix);
                self.record_intent(run).await?;
                self.h.net.create_netns(&name).await?;
                self.h.made.note(&name).await;
                let (net, made, n) = (self.h.net.clone(), self.h.made.clone(), name.clone());
                run.undo.push(format!("delete netns {n}"), async move {
                    if let Err(e) = net.delete_netns(&n).await {
                        tracing::error!(error = %e, "undo: cannot delete netns");
                    }
                    made.forget(&n).await;
                });
                let ops = self.h.ns_ops(&spec.netns).await?;
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
        if self.h.agent.owner_of(existing.alias.as_deref()).as_ref() != Some(&mine) {
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
            entry.netns_id = self.h.netns_identity(&spec.netns).await;
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
            alias: self
                .h
                .agent
                .mark(&Owner::endpoint(&spec.network, &spec.name)),
            group: group_of(spec.network.as_str()),
            target: Some(self.h.ns_file(&spec.netns)),
        };
        if let Err(e) = self.h.net.add_link(&new).await {
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
    pub(super) async fn record_intent(&self, run: &mut Creating<'_>) -> Result<(), Error> {
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
            spec: Some(EndpointSpec {
                mac: Some(spec.effective_mac()),
                create_netns: netns_created || spec.create_netns,
                ..spec.clone()
            }),
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
}
