//! The audit log's hash chain: each record's hash covers its own fields and the previous
//! record's hash, so altering or deleting any record (but the newest, which the head hash that
//! `moat audit verify` prints lets an operator anchor elsewhere) breaks every hash after it.

use sha2::{Digest, Sha256};

/// The `prev_hash` of the first record.
pub const GENESIS: [u8; 32] = [0; 32];

/// One audit record's content: who did what to what, from where, before → after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Record id (UUIDv7).
    pub id: String,
    /// When, Unix milliseconds.
    pub at_ms: i64,
    /// The acting user; `None` for the break-glass key.
    pub actor_user_id: Option<String>,
    /// The key the actor used.
    pub actor_key_id: Option<String>,
    /// Where the request came from (the client address).
    pub source: Option<String>,
    /// What was done, e.g. `user.create`, `key.revoke`.
    pub action: String,
    /// The kind of object acted on: `user`, `team`, `key`, `membership`.
    pub target_type: String,
    /// Its id.
    pub target_id: String,
    /// The object before, as JSON text (`None` when created).
    pub before: Option<String>,
    /// The object after, as JSON text (`None` when deleted).
    pub after: Option<String>,
}

/// A stored record: its event, its position, and its chain hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Position in the chain, from 1, with no gaps.
    pub seq: i64,
    /// The content.
    pub event: AuditEvent,
    /// The previous record's hash.
    pub prev_hash: [u8; 32],
    /// This record's hash.
    pub hash: [u8; 32],
}

/// The hash of `event` at `seq` after `prev_hash`. Every field is length-prefixed (absent
/// ones marked apart from empty ones), so no two different records encode the same.
pub fn chain_hash(prev_hash: &[u8; 32], seq: i64, event: &AuditEvent) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"moat-audit-v1");
    hasher.update(prev_hash);
    hasher.update(seq.to_be_bytes());
    hasher.update(event.at_ms.to_be_bytes());
    let fields = [
        Some(event.id.as_str()),
        event.actor_user_id.as_deref(),
        event.actor_key_id.as_deref(),
        event.source.as_deref(),
        Some(event.action.as_str()),
        Some(event.target_type.as_str()),
        Some(event.target_id.as_str()),
        event.before.as_deref(),
        event.after.as_deref(),
    ];
    for field in fields {
        match field {
            None => hasher.update([0u8]),
            Some(text) => {
                hasher.update([1u8]);
                hasher.update((text.len() as u64).to_be_bytes());
                hasher.update(text.as_bytes());
            }
        }
    }
    hasher.finalize().into()
}

/// Where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit record {seq} ({id}): {reason}")]
pub struct ChainBreak {
    /// The first record that does not verify (or the position where one is missing).
    pub seq: i64,
    /// Its id (empty when the record is missing).
    pub id: String,
    /// What is wrong.
    pub reason: &'static str,
}

/// Checks records in `seq` order: positions without gaps from 1, each `prev_hash` the hash
/// before it, each hash recomputed. Returns how many verified and the head hash.
pub fn verify_chain(records: impl IntoIterator<Item = AuditRecord>) -> Result<(u64, [u8; 32]), ChainBreak> {
    let mut expected_prev = GENESIS;
    let mut count = 0u64;
    for record in records {
        let expected_seq = i64::try_from(count).unwrap_or(i64::MAX).saturating_add(1);
        let broken = |reason| ChainBreak { seq: record.seq, id: record.event.id.clone(), reason };
        if record.seq != expected_seq {
            return Err(ChainBreak {
                seq: expected_seq,
                id: String::new(),
                reason: "missing: a record was deleted here",
            });
        }
        if record.prev_hash != expected_prev {
            return Err(broken("its link to the previous record does not match (a record before it changed or went)"));
        }
        if chain_hash(&record.prev_hash, record.seq, &record.event) != record.hash {
            return Err(broken("its content does not match its hash (the record was altered)"));
        }
        expected_prev = record.hash;
        count += 1;
    }
    Ok((count, expected_prev))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditRecord> {
        let mut prev = GENESIS;
        (1..=n)
            .map(|seq| {
                let event = AuditEvent {
                    id: format!("aud_{seq}"),
                    at_ms: 1_000 + seq,
                    actor_user_id: Some("usr_1".into()),
                    actor_key_id: None,
                    source: Some("127.0.0.1".into()),
                    action: "user.update".into(),
                    target_type: "user".into(),
                    target_id: "usr_2".into(),
                    before: Some(r#"{"org_role":"member"}"#.into()),
                    after: Some(r#"{"org_role":"admin"}"#.into()),
                };
                let hash = chain_hash(&prev, seq, &event);
                let record = AuditRecord { seq, event, prev_hash: prev, hash };
                prev = hash;
                record
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_verifies_and_names_its_head() {
        let records = chain(5);
        let head = records[4].hash;
        assert_eq!(verify_chain(records), Ok((5, head)));
        assert_eq!(verify_chain(Vec::new()), Ok((0, GENESIS)));
    }

    #[test]
    fn an_altered_record_is_named() {
        let mut records = chain(5);
        records[2].event.after = Some(r#"{"org_role":"owner"}"#.into());
        let broken = verify_chain(records).expect_err("altered");
        assert_eq!((broken.seq, broken.id.as_str()), (3, "aud_3"));
    }

    #[test]
    fn a_deleted_record_is_found_where_it_was() {
        let mut records = chain(5);
        records.remove(1);
        assert_eq!(verify_chain(records).expect_err("deleted").seq, 2);
    }

    #[test]
    fn a_rewritten_tail_does_not_pass_as_the_original() {
        let mut records = chain(5);
        // Re-hashing an altered record without its successors leaves the next link broken.
        records[3].event.action = "user.delete".into();
        records[3].hash = chain_hash(&records[3].prev_hash, 4, &records[3].event);
        assert_eq!(verify_chain(records).expect_err("relinked").seq, 5);
    }

    #[test]
    fn absent_and_empty_fields_hash_apart() {
        let mut a = chain(1).remove(0).event;
        a.before = None;
        let mut b = a.clone();
        b.before = Some(String::new());
        assert_ne!(chain_hash(&GENESIS, 1, &a), chain_hash(&GENESIS, 1, &b));
    }
}
