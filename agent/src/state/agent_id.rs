//! The agent's own identity, written into the ownership mark of every link
//! it makes: several agents can share one kernel (the lab's hosts, a test
//! agent beside the real one), and each must list, adopt and delete only
//! its own objects, never another's.
//!
//! The id is random, made once and kept in the state directory
//! (`agent.json`), so it survives restarts and state-directory moves. An
//! agent without a state directory derives it from its namespace prefix,
//! which is what already separates agents sharing a machine.

use std::{io::Read, path::Path};

use linkherd_proto::model::{Mark, Owner};
use serde::{Deserialize, Serialize};

use crate::state::store::{Store, StoreError, Versioned};

/// Which marks are this agent's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentId {
    id: String,
    /// Marks written before marks named their agent are adopted only by an
    /// agent upgraded in place (its state directory already held records):
    /// a new agent next to it must not take them over.
    adopt_unnamed: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct IdentityDoc {
    id: String,
    adopt_unnamed: bool,
}

impl Versioned for IdentityDoc {
    const FORMAT: u32 = 1;
}

const DOC: &str = "agent.json";

impl AgentId {
    /// Reads the id from the store, making it on first start.
    pub async fn load(store: Option<&Store>, netns_prefix: &str) -> Result<Self, StoreError> {
        let Some(store) = store else {
            return Ok(Self::stateless(netns_prefix));
        };
        let doc = store.document::<IdentityDoc>(DOC);
        if let Some(d) = doc.load().await? {
            // The id goes into every alias (at most 255 bytes, words split
            // at spaces): a hand-edited one must still fit and parse.
            let ok = (1..=32).contains(&d.id.len())
                && d.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !ok {
                return Err(StoreError::Refused {
                    path: doc.path().to_owned(),
                    message: format!(
                        "agent id {:?} is not 1-32 letters, digits or '-'; restore the file \
                         (the links this agent made carry its id)",
                        linkherd_proto::model::bounds::echo(&d.id)
                    ),
                });
            }
            return Ok(Self {
                id: d.id,
                adopt_unnamed: d.adopt_unnamed,
            });
        }
        let made = IdentityDoc {
            id: random_id(store.dir())?,
            adopt_unnamed: held_records(store.dir()),
        };
        doc.save(&made).await?;
        tracing::info!(
            agent = made.id,
            adopt_unnamed = made.adopt_unnamed,
            "made this agent's id"
        );
        Ok(Self {
            id: made.id,
            adopt_unnamed: made.adopt_unnamed,
        })
    }

    /// The id of an agent that keeps no state: a hash of its namespace
    /// prefix (stable across restarts; unique where prefixes are).
    pub fn stateless(netns_prefix: &str) -> Self {
        let h = netns_prefix
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
            });
        Self {
            id: format!("p{:011x}", h & 0x0fff_ffff_ffff),
            adopt_unnamed: false,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The alias this agent writes for `owner`.
    pub fn mark(&self, owner: &Owner) -> String {
        Mark {
            owner: owner.clone(),
            agent: Some(self.id.clone()),
        }
        .to_string()
    }

    /// What a link is for, if this agent made it; `None` for links that
    /// are not linkherd's and for another agent's.
    pub fn owner_of(&self, alias: Option<&str>) -> Option<Owner> {
        let m = Mark::parse(alias?)?;
        match &m.agent {
            Some(a) if *a == self.id => Some(m.owner),
            None if self.adopt_unnamed => Some(m.owner),
            _ => None,
        }
    }

    /// The id of the other agent that made a link, if another one did.
    pub fn other_agent(&self, alias: Option<&str>) -> Option<String> {
        let m = Mark::parse(alias?)?;
        match m.agent {
            Some(a) if a != self.id => Some(a),
            None if !self.adopt_unnamed => Some("an agent of a version without agent ids".into()),
            _ => None,
        }
    }
}

/// 48 random bits as 12 hex digits.
fn random_id(dir: &Path) -> Result<String, StoreError> {
    let mut bytes = [0u8; 6];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(StoreError::io("read /dev/urandom to make an id for", dir))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether the state directory already held an agent's records (an
/// upgrade in place) rather than being new or holding only the audit log.
fn held_records(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            !(name == "audit.log" || name.starts_with(DOC) || name.starts_with('.'))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep() -> Owner {
        Owner::Endpoint {
            network: "n".into(),
            name: "b1".into(),
        }
    }

    #[test]
    fn only_its_own_marks_are_an_agents() {
        let a = AgentId::stateless("lab-a-");
        let b = AgentId::stateless("lab-b-");
        assert_ne!(a.id(), b.id());
        let alias = a.mark(&ep());
        assert_eq!(a.owner_of(Some(&alias)), Some(ep()));
        assert_eq!(b.owner_of(Some(&alias)), None);
        assert_eq!(b.other_agent(Some(&alias)).as_deref(), Some(a.id()));
        assert_eq!(a.other_agent(Some(&alias)), None);
        assert_eq!(a.owner_of(Some("uplink")), None);
        assert_eq!(a.other_agent(Some("uplink")), None);
    }

    #[test]
    fn unnamed_marks_belong_only_to_an_upgraded_agent() {
        let legacy = "linkherd:v1 ep net=n name=b1";
        let fresh = AgentId::stateless("");
        assert_eq!(fresh.owner_of(Some(legacy)), None);
        let upgraded = AgentId {
            id: "0123456789ab".into(),
            adopt_unnamed: true,
        };
        assert_eq!(upgraded.owner_of(Some(legacy)), Some(ep()));
        assert_eq!(upgraded.other_agent(Some(legacy)), None);
    }

    #[tokio::test]
    async fn the_id_is_kept_and_an_upgrade_adopts_unnamed_marks() {
        let fresh = tempfile::tempdir().expect("tmp");
        let store = Store::open(fresh.path()).await.expect("store");
        let first = AgentId::load(Some(&store), "").await.expect("id");
        assert!(!first.adopt_unnamed, "a new state directory adopts nothing");
        assert_eq!(first.id().len(), 12);
        assert_eq!(AgentId::load(Some(&store), "").await.expect("id"), first);

        let old = tempfile::tempdir().expect("tmp");
        std::fs::create_dir(old.path().join("endpoints")).expect("dir");
        let store = Store::open(old.path()).await.expect("store");
        let upgraded = AgentId::load(Some(&store), "").await.expect("id");
        assert!(upgraded.adopt_unnamed);
        assert_ne!(upgraded.id(), first.id());

        // A hand-edited id that would not fit in an alias is refused.
        std::fs::write(
            fresh.path().join(DOC),
            r#"{"format": 1, "id": "has a space", "adopt_unnamed": false}"#,
        )
        .expect("write");
        let err = AgentId::load(Some(&store_of(fresh.path()).await), "")
            .await
            .expect_err("bad id");
        assert!(
            err.to_string()
                .contains("agent id \"has a space\" is not 1-32 letters"),
            "{err}"
        );
    }

    async fn store_of(dir: &std::path::Path) -> Store {
        Store::open(dir).await.expect("store")
    }
}
