//! Mending a container's attachment as the reconciler found it (see
//! `host::drift`): made again in its namespace with the same MAC and
//! addresses when its link went, tweaked in place when it was set down or
//! lost an address, released when its namespace has stayed gone for the
//! grace period.

use linkherd_proto::model::NetnsRef;

use super::not_in_catalog;
use crate::{
    error::Error,
    host::{
        Attachments,
        drift::Fix,
        registry::{Registry, attachments::Attached},
        repair::apply_tweaks,
    },
};

impl Attachments<'_> {
    /// Mends `a` by `fix`, the registry lock held and its record checked
    /// by the caller; what was done (`None`: nothing to do).
    pub(in crate::host) async fn repair_attachment(
        &self,
        a: &Attached,
        fix: &Fix,
        reg: &mut Registry,
    ) -> Result<Option<String>, Error> {
        if *fix == Fix::Release {
            let gone = self.detach_locked(&a.key(), reg).await?;
            return Ok(gone.map(|_| "released; its addresses are free again".to_owned()));
        }
        let ops = self.h.ns_ops(&NetnsRef::Path(a.netns.clone())).await?;
        match fix {
            Fix::Tweak { index, tweaks } => {
                Ok(Some(apply_tweaks(ops.as_ref(), *index, tweaks).await?))
            }
            Fix::Make | Fix::Remake { .. } => {
                let net = self
                    .h
                    .catalog()
                    .network(&a.network)
                    .await
                    .ok_or_else(|| not_in_catalog(&a.network))?;
                if let Fix::Remake { index } = fix {
                    ops.del_link(*index).await?;
                }
                self.make_attachment(a.clone(), &net, &ops, reg).await?;
                Ok(Some("made again with its MAC and addresses".to_owned()))
            }
            _ => Ok(None),
        }
    }
}
