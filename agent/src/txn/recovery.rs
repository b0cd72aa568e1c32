//! Recovery at start: a transaction an agent left unconfirmed (it stopped,
//! crashed or lost power before Confirm) is rolled back before the agent
//! serves, whether today's journal or an older agent's `txn.json` holds it.

use super::{LEGACY_JOURNAL, Transactions, journal::Journal, legacy::LegacyJournal};
use crate::{error::Error, state::caller::Identity};

impl Transactions {
    /// Rolls back a transaction left by an agent that stopped before it was
    /// confirmed — in today's journal or an older agent's `txn.json`.
    /// Called once at start; fails only when the journal cannot be read or
    /// removed.
    pub async fn recover(&self) -> Result<(), Error> {
        if let Err(e) = self.host.addrcheck().remove_stale_probe_netns().await {
            tracing::error!(error = %e, "cannot remove the address-check namespace a previous run left");
        }
        let (Some(store), Some(records)) = (&self.store, &self.journal) else {
            return Ok(());
        };
        if let Some(old) = store.read_legacy::<LegacyJournal>(LEGACY_JOURNAL).await? {
            let (journal, unreadable) = old.upgrade();
            self.recover_one(&journal, unreadable).await;
            store.remove_file(LEGACY_JOURNAL).await?;
        }
        let mut batches = records.load_all().await?;
        batches.sort_by(|a, b| (&a.txn, a.seq).cmp(&(&b.txn, b.seq)));
        let mut journals: Vec<Journal> = Vec::new();
        for b in batches {
            match journals.last_mut() {
                Some(j) if j.id == b.txn => j.batches.push(b),
                _ => journals.push(Journal {
                    id: b.txn.clone(),
                    deadline: b.deadline,
                    next_seq: 0,
                    batches: vec![b],
                }),
            }
        }
        for j in &journals {
            self.recover_one(j, Vec::new()).await;
        }
        self.forget().await
    }

    pub(super) async fn recover_one(&self, j: &Journal, mut notes: Vec<String>) {
        tracing::warn!(
            txn = j.id,
            "rolling back a transaction left unconfirmed by a previous run"
        );
        notes.extend(self.revert(j).await);
        let who = Identity::agent("restart with an unconfirmed transaction");
        self.audit
            .record(&who, "txn-recover", &j.id, &notes.join("; "), "rolled back");
    }
}
