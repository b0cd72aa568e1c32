//! What the host should have (its desired state, from the agent's records)
//! and how the kernel differs from it: the reading half of convergence.
//! The deciding half (when to repair, backoff, fights) is `converge`; the
//! mending half is `repair.rs`.
//!
//! A check costs one listing of the host namespace's links and routes and
//! one of each endpoint namespace's links and routes, whatever the number of
//! endpoints: a thousand endpoints in one namespace are two dumps there.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
};

use ipnet::IpNet;
use linkherd_proto::model::{
    EndpointState, HostAccessSpec, IfName, Interface, LinkDetails, NetnsRef, Owner, VlanSpec,
    split_vlan_name,
};
use serde::Serialize;

use super::{
    Host,
    endpoints::{configured, entry_netns},
    registry::{Entry, attachments::Attached},
};
use crate::{error::Error, net::Route};

/// One object of the desired state, by kind and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ObjectKey {
    Vlan {
        name: String,
    },
    Endpoint {
        network: String,
        name: String,
    },
    HostAccess {
        network: String,
    },
    Promisc {
        link: String,
    },
    /// A container's attachment (CNI): network, container id, interface.
    Attachment {
        network: String,
        container: String,
        ifname: String,
    },
}

impl ObjectKey {
    /// The kind, as metrics and `status` name it.
    pub fn kind(&self) -> &'static str {
        match self {
            ObjectKey::Vlan { .. } => "vlan",
            ObjectKey::Endpoint { .. } => "endpoint",
            ObjectKey::HostAccess { .. } => "host-access",
            ObjectKey::Promisc { .. } => "promisc",
            ObjectKey::Attachment { .. } => "attachment",
        }
    }

    /// The object's name within its kind.
    pub fn name(&self) -> String {
        match self {
            ObjectKey::Vlan { name } => name.clone(),
            ObjectKey::Endpoint { network, name } => format!("{network}/{name}"),
            ObjectKey::HostAccess { network } => network.clone(),
            ObjectKey::Promisc { link } => link.clone(),
            ObjectKey::Attachment {
                network,
                container,
                ifname,
            } => format!("{network}/{container}/{ifname}"),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind(), self.name())
    }
}

/// The host's desired state: what linkherd confirmed there, as its records
/// hold it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Desired {
    /// VLANs an operator asked for.
    pub vlans: Vec<VlanSpec>,
    /// Endpoints (each with its spec).
    pub endpoints: Vec<Entry>,
    pub host_access: Vec<HostAccessSpec>,
    /// Links kept promiscuous.
    pub promisc: Vec<String>,
    /// The links containers' attachments hang off (an auto VLAN they use
    /// is still needed).
    #[serde(skip)]
    pub attached_parents: BTreeSet<String>,
    /// Containers' attachments made by CNI (Docker's hand-overs are
    /// Docker's to make again when its containers restart).
    pub attachments: Vec<Attached>,
}

impl Desired {
    /// A fingerprint of the desired state (FNV-1a over its JSON form): it
    /// changes with any desired object, and is the same after a restart.
    pub fn generation(&self) -> u64 {
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    }

    /// Every object it names.
    pub fn keys(&self) -> BTreeSet<ObjectKey> {
        let mut out = BTreeSet::new();
        out.extend(self.vlans.iter().map(|v| ObjectKey::Vlan {
            name: v.name.to_string(),
        }));
        out.extend(auto_vlans(&self.endpoints).map(|name| ObjectKey::Vlan { name }));
        out.extend(self.endpoints.iter().map(endpoint_key));
        out.extend(self.host_access.iter().map(|h| ObjectKey::HostAccess {
            network: h.network.to_string(),
        }));
        out.extend(
            self.promisc
                .iter()
                .map(|l| ObjectKey::Promisc { link: l.clone() }),
        );
        out.extend(self.attachments.iter().map(attachment_key));
        out
    }
}

pub fn attachment_key(a: &Attached) -> ObjectKey {
    ObjectKey::Attachment {
        network: a.network.clone(),
        container: a.container_id.clone(),
        ifname: a.ifname.clone(),
    }
}

pub fn endpoint_key(e: &Entry) -> ObjectKey {
    ObjectKey::Endpoint {
        network: e.network.clone(),
        name: e.name.clone(),
    }
}

/// The VLANs linkherd made as parents of its endpoints.
fn auto_vlans(entries: &[Entry]) -> impl Iterator<Item = String> + '_ {
    entries
        .iter()
        .filter(|e| e.parent_created)
        .map(|e| e.parent.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
}

/// The record a drift was found against: a repair is made only while the
/// record is still this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Vlan(VlanSpec),
    /// A VLAN made for `network`'s endpoints.
    AutoVlan {
        name: String,
        network: String,
    },
    /// A VLAN this agent made for `network` that nothing uses any more (a
    /// crash between an endpoint's delete and its parent's).
    Leftover {
        name: String,
        network: String,
    },
    Endpoint(Box<Entry>),
    Attachment(Box<Attached>),
    HostAccess(HostAccessSpec),
    Promisc(String),
}

/// A change that puts a link back as desired without re-making it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tweak {
    Up,
    Mtu(u32),
    Address(IpNet),
    Route(Route),
    Promisc,
}

/// How a drift is mended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fix {
    /// The object is missing: make it as its record says.
    Make,
    /// The link (index in its namespace) differs in a way only a new one
    /// mends: delete it, then make it.
    Remake { index: u32 },
    /// Changes to link `index` in the object's namespace.
    Tweak { index: u32, tweaks: Vec<Tweak> },
    /// Nothing to do now (a parent missing, a foreign link holding the
    /// name, a namespace linkherd did not make): checked again later.
    Wait,
    /// It cannot come back (its process's namespace is gone): the record
    /// goes, audited.
    Forget,
    /// This agent's, and no longer desired: link `index` is deleted.
    Remove { index: u32 },
    /// A container's attachment whose namespace is gone (the container
    /// was removed while the agent was away, or its runtime never said):
    /// released once it has stayed gone for the grace period.
    Release,
}

/// One object that differs from its desired state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub key: ObjectKey,
    pub seen: Seen,
    /// What differs, in words.
    pub what: String,
    pub fix: Fix,
}

fn join<T: fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

impl Host {
    /// The desired state, copied from the records under the registry lock
    /// (never held across a kernel call); `promisc` comes from the lease
    /// journal.
    pub async fn desired(&self, promisc: Vec<String>) -> Desired {
        let reg = self.registry.lock().await;
        Desired {
            vlans: reg.vlans.all().cloned().collect(),
            endpoints: reg.all().cloned().collect(),
            host_access: reg.host_access.all().cloned().collect(),
            promisc,
            attached_parents: reg.attachments.all().map(|a| a.parent.clone()).collect(),
            attachments: reg
                .attachments
                .all()
                .filter(|a| !a.handed_over)
                .cloned()
                .collect(),
        }
    }

    /// A number that moves whenever the records of the desired state do.
    pub async fn desired_changes(&self) -> u64 {
        self.registry.lock().await.changes()
    }

    /// How the kernel differs from `desired`, object by object.
    pub async fn drift(&self, desired: &Desired) -> Result<Vec<Drift>, Error> {
        // A namespace deleted by hand lives on while the agent holds a
        // socket in it, and so would the endpoint that is gone for everyone
        // else.
        self.net.release_deleted_namespaces();
        let links: BTreeMap<String, Interface> = self
            .net
            .links()
            .await?
            .into_iter()
            .map(|l| (l.name.clone(), l))
            .collect();
        let routes = self.net.routes().await?;
        let mut out = Vec::new();
        for v in &desired.vlans {
            out.extend(self.vlan_drift(v, &links));
        }
        out.extend(self.auto_vlan_drift(&desired.endpoints, &links));
        out.extend(self.leftovers(desired, &links));
        out.extend(self.endpoints_drift(&desired.endpoints, &links).await?);
        for h in &desired.host_access {
            out.extend(self.host_access_drift(h, &links, &routes));
        }
        for p in &desired.promisc {
            out.extend(promisc_drift(p, &links));
        }
        for a in &desired.attachments {
            out.extend(self.attachment_drift(a).await?);
        }
        Ok(out)
    }

    fn vlan_drift(&self, v: &VlanSpec, links: &BTreeMap<String, Interface>) -> Option<Drift> {
        let drift = |what: String, fix| Drift {
            key: ObjectKey::Vlan {
                name: v.name.to_string(),
            },
            seen: Seen::Vlan(v.clone()),
            what,
            fix,
        };
        let Some(link) = links.get(v.name.as_str()) else {
            return Some(match links.contains_key(v.parent.as_str()) {
                true => drift("missing".into(), Fix::Make),
                false => drift(
                    format!("missing; its parent {} is missing", v.parent),
                    Fix::Wait,
                ),
            });
        };
        if self.agent.owner_of(link.alias.as_deref()) != Some(Owner::Vlan) {
            return Some(drift(
                format!(
                    "the name is taken by a link linkherd did not make ({})",
                    link.kind_name
                ),
                Fix::Wait,
            ));
        }
        let same_vlan = matches!(link.details, Some(LinkDetails::Vlan { id, protocol, .. })
            if id == v.id.get() && protocol == v.protocol)
            && link.parent.as_deref() == Some(v.parent.as_str());
        if !same_vlan {
            return Some(drift(
                "another VLAN id, protocol or parent".into(),
                Fix::Remake { index: link.index },
            ));
        }
        let mut tweaks = Vec::new();
        let mut what = Vec::new();
        if !link.admin_up {
            tweaks.push(Tweak::Up);
            what.push("down".to_owned());
        }
        if let Some(m) = v.mtu.filter(|m| *m != link.mtu) {
            tweaks.push(Tweak::Mtu(m));
            what.push(format!("mtu {} (desired {m})", link.mtu));
        }
        (!tweaks.is_empty()).then(|| {
            drift(
                what.join(", "),
                Fix::Tweak {
                    index: link.index,
                    tweaks,
                },
            )
        })
    }

    /// VLANs made for a network's endpoints: set down, they take the
    /// endpoints off the wire while each endpoint still looks up. (Missing,
    /// they are made again with the endpoints, which went with them.)
    fn auto_vlan_drift<'a>(
        &'a self,
        entries: &'a [Entry],
        links: &'a BTreeMap<String, Interface>,
    ) -> impl Iterator<Item = Drift> + 'a {
        let mut seen = BTreeSet::new();
        entries
            .iter()
            .filter(|e| e.parent_created)
            .filter(move |e| seen.insert(e.parent.clone()))
            .filter_map(move |e| {
                let link = links.get(&e.parent)?;
                let mine = Owner::AutoVlan {
                    network: e.network.clone(),
                };
                if self.agent.owner_of(link.alias.as_deref()) != Some(mine) || link.admin_up {
                    return None;
                }
                Some(Drift {
                    key: ObjectKey::Vlan {
                        name: e.parent.clone(),
                    },
                    seen: Seen::AutoVlan {
                        name: e.parent.clone(),
                        network: e.network.clone(),
                    },
                    what: "down".into(),
                    fix: Fix::Tweak {
                        index: link.index,
                        tweaks: vec![Tweak::Up],
                    },
                })
            })
    }

    /// VLANs this agent made for a network that no endpoint or attachment
    /// uses: removed (their mark is this agent's, in the host namespace,
    /// where no tenant writes).
    fn leftovers<'a>(
        &'a self,
        desired: &'a Desired,
        links: &'a BTreeMap<String, Interface>,
    ) -> impl Iterator<Item = Drift> + 'a {
        links.values().filter_map(move |l| {
            let Some(Owner::AutoVlan { network }) = self.agent.owner_of(l.alias.as_deref()) else {
                return None;
            };
            let used = desired.endpoints.iter().any(|e| e.parent == l.name)
                || desired.attached_parents.contains(&l.name)
                || desired.vlans.iter().any(|v| v.name.as_str() == l.name);
            (!used).then(|| Drift {
                key: ObjectKey::Vlan {
                    name: l.name.clone(),
                },
                seen: Seen::Leftover {
                    name: l.name.clone(),
                    network: network.clone(),
                },
                what: format!("made for network {network}, used by nothing"),
                fix: Fix::Remove { index: l.index },
            })
        })
    }

    async fn endpoints_drift(
        &self,
        entries: &[Entry],
        links: &BTreeMap<String, Interface>,
    ) -> Result<Vec<Drift>, Error> {
        let observed = self.endpoints().observe_many(entries).await?;
        let mut out = Vec::new();
        for (e, state) in entries.iter().zip(observed) {
            let Some(spec) = &e.spec else {
                continue;
            };
            let parent = links.get(&e.parent);
            let found = match (state, parent) {
                (Some(s), _) => endpoint_differences(spec, &s, parent.map(|p| p.mtu)),
                // Its parent comes back with a kernel event; no backoff
                // should be running then.
                (None, None) if !e.parent_created || !vlan_base_present(&e.parent, links) => {
                    Some((
                        format!("missing; its parent {} is missing", e.parent),
                        Fix::Wait,
                    ))
                }
                (None, _) => self.missing_endpoint(e).await,
            };
            if let Some((what, fix)) = found {
                out.push(Drift {
                    key: endpoint_key(e),
                    seen: Seen::Endpoint(Box::new(e.clone())),
                    what,
                    fix,
                });
            }
        }
        Ok(out)
    }

    /// How a container's attachment differs: its namespace gone (stale,
    /// released after a grace), its link gone or taken, down, an address
    /// lost.
    async fn attachment_drift(&self, a: &Attached) -> Result<Option<Drift>, Error> {
        let drift = |what: String, fix| Drift {
            key: attachment_key(a),
            seen: Seen::Attachment(Box::new(a.clone())),
            what,
            fix,
        };
        let netns = NetnsRef::Path(a.netns.clone());
        let now = self.netns_identity(&netns).await;
        // Its path now names another namespace (the pid went to another
        // process): the container's is gone as surely as a missing file.
        let moved = a.netns_id.is_some() && now.is_some() && now != a.netns_id;
        let ops = match self.ns_ops(&netns).await {
            Ok(ops) if !moved => ops,
            _ => {
                let why = format!("stale: its namespace {} is gone", a.netns.display());
                return Ok(Some(drift(why, Fix::Release)));
            }
        };
        if let Some(l) = self.attachments().attached_link(a, ops.as_ref()).await? {
            let have = configured(&l.addresses);
            let mut tweaks: Vec<Tweak> = a
                .addresses
                .iter()
                .filter(|x| !have.contains(x))
                .map(|x| Tweak::Address(*x))
                .collect();
            if !l.admin_up {
                tweaks.push(Tweak::Up);
            }
            if l.mac != Some(a.mac) {
                return Ok(Some(drift(
                    "another MAC".into(),
                    Fix::Remake { index: l.index },
                )));
            }
            return Ok((!tweaks.is_empty()).then(|| {
                let fix = Fix::Tweak {
                    index: l.index,
                    tweaks,
                };
                drift("down or an address lost".into(), fix)
            }));
        }
        let name = IfName::parse("ifname", &a.ifname)?;
        Ok(Some(match ops.link(&name).await {
            Ok(l) => drift(
                format!(
                    "{} is taken by a link linkherd did not make ({})",
                    a.ifname, l.kind_name
                ),
                Fix::Wait,
            ),
            Err(_) => drift(
                format!("missing ({} in its container)", a.ifname),
                Fix::Make,
            ),
        }))
    }

    /// Why a recorded endpoint was not found, and what can be done.
    async fn missing_endpoint(&self, e: &Entry) -> Option<(String, Fix)> {
        let netns = entry_netns(e);
        let ops = match (self.ns_ops(&netns).await, &netns) {
            (Ok(ops), _) => ops,
            (Err(_), NetnsRef::Named(n)) => {
                let makes = e.netns_created || e.spec.as_ref().is_some_and(|s| s.create_netns);
                return Some(if makes {
                    (format!("missing, with its namespace {n}"), Fix::Make)
                } else {
                    let why = format!(
                        "its namespace {n} is gone (linkherd did not make it); \
                         made again when the namespace is back"
                    );
                    (why, Fix::Wait)
                });
            }
            (Err(_), _) => return Some((format!("its namespace {netns} is gone"), Fix::Forget)),
        };
        // A process's namespace whose path now names another one (the pid
        // went to another process) is gone; a name is its own identity.
        if !matches!(netns, NetnsRef::Named(_))
            && let Some(want) = e.netns_id
            && self
                .netns_identity(&netns)
                .await
                .is_some_and(|now| now != want)
        {
            let why = format!("its namespace {netns} is gone (another one has its path now)");
            return Some((why, Fix::Forget));
        }
        let name = IfName::parse("ifname", &e.ifname).ok()?;
        Some(match ops.link(&name).await {
            Ok(l) => (
                format!(
                    "{} in {netns} is taken by a link linkherd did not make ({})",
                    e.ifname, l.kind_name
                ),
                Fix::Wait,
            ),
            Err(_) => (format!("missing ({} in {netns})", e.ifname), Fix::Make),
        })
    }

    fn host_access_drift(
        &self,
        h: &HostAccessSpec,
        links: &BTreeMap<String, Interface>,
        routes: &[Route],
    ) -> Option<Drift> {
        let drift = |what: String, fix| Drift {
            key: ObjectKey::HostAccess {
                network: h.network.to_string(),
            },
            seen: Seen::HostAccess(h.clone()),
            what,
            fix,
        };
        let mine = Owner::HostAccess {
            network: h.network.to_string(),
        };
        let Some(link) = links
            .values()
            .find(|l| self.agent.owner_of(l.alias.as_deref()).as_ref() == Some(&mine))
        else {
            return Some(if !links.contains_key(h.parent.as_str()) {
                drift(
                    format!("missing; its parent {} is missing", h.parent),
                    Fix::Wait,
                )
            } else if links.contains_key(h.name.as_str()) {
                drift(
                    format!(
                        "missing; {} is taken by a link linkherd did not make",
                        h.name
                    ),
                    Fix::Wait,
                )
            } else {
                drift("missing".into(), Fix::Make)
            });
        };
        let have = configured(&link.addresses);
        let want: BTreeSet<IpNet> = h.addresses.iter().copied().collect();
        let on_parent = links.get(h.parent.as_str()).map(|p| p.index) == Some(link.parent_index);
        if !have.is_subset(&want) || !on_parent || link.name != h.name.as_str() {
            return Some(drift(
                format!("addresses [{}], parent or name differ", join(&have)),
                Fix::Remake { index: link.index },
            ));
        }
        let (tweaks, what) = host_access_tweaks(h, link, routes);
        (!tweaks.is_empty()).then(|| {
            drift(
                what.join(", "),
                Fix::Tweak {
                    index: link.index,
                    tweaks,
                },
            )
        })
    }
}

/// What puts host access `link` back as `h` says in place: the addresses
/// it lacks, up, the routes through it that went; and in words.
fn host_access_tweaks(
    h: &HostAccessSpec,
    link: &Interface,
    routes: &[Route],
) -> (Vec<Tweak>, Vec<String>) {
    let have = configured(&link.addresses);
    let want: BTreeSet<IpNet> = h.addresses.iter().copied().collect();
    let mut tweaks: Vec<Tweak> = want.difference(&have).map(|a| Tweak::Address(*a)).collect();
    let mut what = Vec::new();
    if !tweaks.is_empty() {
        what.push(format!(
            "addresses [{}] missing",
            join(want.difference(&have))
        ));
    }
    if !link.admin_up {
        tweaks.push(Tweak::Up);
        what.push("down".into());
    }
    let routed: BTreeSet<IpNet> = routes
        .iter()
        .filter(|r| r.index == link.index && r.gateway.is_none())
        .map(|r| r.dest)
        .collect();
    let lost: Vec<IpNet> = h
        .routes
        .iter()
        .filter(|d| !routed.contains(d))
        .copied()
        .collect();
    if !lost.is_empty() {
        what.push(format!("routes [{}] missing", join(&lost)));
    }
    tweaks.extend(lost.into_iter().map(|dest| {
        Tweak::Route(Route {
            dest,
            gateway: None,
            index: link.index,
        })
    }));
    (tweaks, what)
}

/// How an endpoint found in the kernel differs from its spec, and the
/// least that mends it.
fn endpoint_differences(
    spec: &linkherd_proto::model::EndpointSpec,
    s: &EndpointState,
    parent_mtu: Option<u32>,
) -> Option<(String, Fix)> {
    let index = s.interface.as_ref().map_or(0, |i| i.index);
    if !s.owned {
        return Some((
            format!(
                "{} in {} is not this endpoint's link any more",
                s.ifname, s.netns
            ),
            Fix::Wait,
        ));
    }
    let have: BTreeSet<IpNet> = s.addresses.iter().copied().collect();
    let want: BTreeSet<IpNet> = spec.addresses.iter().copied().collect();
    let mut remake = Vec::new();
    if s.mac != Some(spec.effective_mac()) {
        remake.push(format!("mac (desired {})", spec.effective_mac()));
    }
    if s.mode != spec.mode || s.source_macs != spec.source_macs {
        remake.push(format!(
            "mode {} (desired {})",
            s.mode.as_str(),
            spec.mode.as_str()
        ));
    }
    if !have.is_subset(&want) {
        remake.push(format!(
            "addresses [{}] not desired",
            join(have.difference(&want))
        ));
    }
    if s.gateway.is_some() && s.gateway != spec.gateway {
        remake.push("another gateway".into());
    }
    if !remake.is_empty() {
        return Some((remake.join(", "), Fix::Remake { index }));
    }
    let mut what = Vec::new();
    let mut tweaks: Vec<Tweak> = want.difference(&have).map(|a| Tweak::Address(*a)).collect();
    if !tweaks.is_empty() {
        what.push(format!(
            "addresses [{}] missing",
            join(want.difference(&have))
        ));
    }
    // No MTU asked for: the parent's, as the kernel gave it at creation.
    if let Some(m) = spec.mtu.or(parent_mtu).filter(|m| *m != s.mtu) {
        tweaks.push(Tweak::Mtu(m));
        what.push(format!("mtu {} (desired {m})", s.mtu));
    }
    if s.interface.as_ref().is_some_and(|i| !i.admin_up) {
        tweaks.push(Tweak::Up);
        what.push("down".into());
    }
    if let (None, Some(gw)) = (s.gateway, spec.gateway) {
        tweaks.push(Tweak::Route(Route {
            dest: super::endpoints::default_route(gw.is_ipv4()),
            gateway: Some(gw),
            index,
        }));
        what.push(format!("default route via {gw} missing"));
    }
    (!tweaks.is_empty()).then(|| (what.join(", "), Fix::Tweak { index, tweaks }))
}

/// Whether `parent` is a VLAN name `BASE.ID` whose BASE is there (the
/// endpoint's create makes the VLAN again).
fn vlan_base_present(parent: &str, links: &BTreeMap<String, Interface>) -> bool {
    IfName::parse("parent", parent)
        .ok()
        .as_ref()
        .and_then(split_vlan_name)
        .is_some_and(|(base, _)| links.contains_key(base.as_str()))
}

fn promisc_drift(name: &str, links: &BTreeMap<String, Interface>) -> Option<Drift> {
    let key = ObjectKey::Promisc {
        link: name.to_owned(),
    };
    let seen = Seen::Promisc(name.to_owned());
    match links.get(name) {
        None => Some(Drift {
            key,
            seen,
            what: format!("{name} is missing"),
            fix: Fix::Wait,
        }),
        Some(l) if !l.promiscuous => Some(Drift {
            key,
            seen,
            what: "promiscuous mode is off".into(),
            fix: Fix::Tweak {
                index: l.index,
                tweaks: vec![Tweak::Promisc],
            },
        }),
        Some(_) => None,
    }
}
