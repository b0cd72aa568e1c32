//! Taking back endpoints a lost state directory held: the one place a mark
//! on a link decides anything, and only when the operator asks for it
//! (`linkherd-agent --adopt`), never on a read.
//!
//! A mark is no proof — root in a namespace can write any alias there, and
//! every tenant can read this agent's id from its own `eth0` — so adoption
//! looks only into the named namespaces this agent noted it made (see
//! `made_netns`; a runtime's are never scanned), takes only macvlans whose
//! names pass the request rules, refuses a name marked twice, stops at a
//! bound, and says what it took and what it refused (the caller audits
//! each line).

use std::collections::{BTreeMap, BTreeSet};

use linkherd_proto::model::{IfName, Interface, LinkDetails, NetnsRef, ObjName, Owner, bounds};

use super::{
    super::registry::{Entry, Netns},
    Endpoints,
};
use crate::error::Error;

/// At most this many endpoints are taken back in one start; the rest are
/// refused (a forged flood must not become records).
pub const MAX_ADOPTED: usize = 4096;

/// What an adoption took back and what it refused, one line each.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Adoption {
    pub adopted: Vec<String>,
    pub refused: Vec<String>,
}

/// One marked macvlan, its names checked.
struct Candidate {
    network: ObjName,
    name: ObjName,
    netns: String,
    link: Interface,
}

impl Endpoints<'_> {
    /// Records the endpoints marked as this agent's in its named namespaces
    /// that its records do not hold. See the module docs.
    pub async fn adopt(&self) -> Result<Adoption, Error> {
        let mut out = Adoption::default();
        let candidates = self.marked(&mut out).await?;
        let host = self.h.net.links().await?;
        let mut reg = self.h.registry.lock().await;
        let known: BTreeSet<(String, String)> = reg
            .all()
            .map(|e| (e.network.clone(), e.name.clone()))
            .collect();
        for c in candidates {
            let what = format!("endpoint {}/{}", c.network.as_str(), c.name.as_str());
            if known.contains(&(c.network.as_str().to_owned(), c.name.as_str().to_owned())) {
                continue;
            }
            if out.adopted.len() >= MAX_ADOPTED {
                out.refused
                    .push(format!("{what}: more than {MAX_ADOPTED} to adopt"));
                continue;
            }
            let parent = host.iter().find(|h| h.index == c.link.parent_index);
            let parent_created = parent
                .and_then(|p| self.h.agent.owner_of(p.alias.as_deref()))
                .is_some_and(
                    |o| matches!(o, Owner::AutoVlan { network } if network == c.network.as_str()),
                );
            let netns = NetnsRef::Named(c.netns.clone());
            reg.insert(Entry {
                network: c.network.as_str().to_owned(),
                name: c.name.as_str().to_owned(),
                netns: Netns::Name(c.netns.clone()),
                ifname: c.link.name.clone(),
                parent: parent.map(|p| p.name.clone()).unwrap_or_default(),
                parent_created,
                netns_created: false,
                netns_id: self.h.netns_identity(&netns).await,
                spec: None,
            })
            .await?;
            out.adopted
                .push(format!("{what} ({} in {netns})", c.link.name));
        }
        Ok(out)
    }

    /// This agent's marked macvlans in its named namespaces, names valid and
    /// each (network, name) marked once; the rest refused in `out`.
    async fn marked(&self, out: &mut Adoption) -> Result<Vec<Candidate>, Error> {
        let mut seen: BTreeMap<(ObjName, ObjName), Option<Candidate>> = BTreeMap::new();
        for full in self.h.net.netns_names().await? {
            let Some(ns) = full.strip_prefix(&self.h.netns_prefix) else {
                continue;
            };
            // Only into namespaces this agent made: a runtime's are never
            // scanned, whatever marks their root wrote.
            if !self.h.made.noted(&full).await {
                continue;
            }
            let file = self.h.ns_file(&NetnsRef::Named(ns.to_owned()));
            let Ok(ops) = self.h.net.netns(&file).await else {
                continue;
            };
            for link in ops.links().await.unwrap_or_default() {
                let Some(Owner::Endpoint { network, name }) =
                    self.h.agent.owner_of(link.alias.as_deref())
                else {
                    continue;
                };
                match checked(&network, &name, &link) {
                    Ok((network, name)) => {
                        let c = Candidate {
                            network: network.clone(),
                            name: name.clone(),
                            netns: ns.to_owned(),
                            link,
                        };
                        seen.entry((network, name))
                            .and_modify(|twice| *twice = None)
                            .or_insert(Some(c));
                    }
                    Err(why) => out.refused.push(format!(
                        "{} in netns {}: {why}",
                        bounds::echo(&link.name),
                        bounds::echo(ns)
                    )),
                }
            }
        }
        let mut candidates = Vec::new();
        for ((network, name), c) in seen {
            match c {
                Some(c) => candidates.push(c),
                None => out.refused.push(format!(
                    "endpoint {}/{}: marked on more than one link",
                    network.as_str(),
                    name.as_str()
                )),
            }
        }
        Ok(candidates)
    }
}

/// The mark's names and the link, checked as a request's would be.
fn checked(network: &str, name: &str, link: &Interface) -> Result<(ObjName, ObjName), String> {
    let network = ObjName::parse("network", network).map_err(|e| e.to_string())?;
    let name = ObjName::parse("name", name).map_err(|e| e.to_string())?;
    IfName::parse("ifname", &link.name).map_err(|e| e.to_string())?;
    if !matches!(link.details, Some(LinkDetails::Macvlan { .. })) {
        return Err("marked as an endpoint but it is not a macvlan".to_owned());
    }
    Ok((network, name))
}
