//! Filters for reading usage records back.

/// Which usage records to return. Every field narrows the result; none set means all.
#[derive(Debug, Clone, Default)]
pub struct UsageFilter {
    /// Only the record of this request id.
    pub id: Option<String>,
    /// Only this key's records.
    pub key_id: Option<String>,
    /// Only the records charged to this user.
    pub user_id: Option<String>,
    /// Only this public model.
    pub model: Option<String>,
    /// Only this deployment.
    pub deployment: Option<String>,
    /// Only this HTTP status.
    pub status: Option<u16>,
    /// Created at or after, Unix milliseconds.
    pub from_ms: Option<i64>,
    /// Created before, Unix milliseconds.
    pub to_ms: Option<i64>,
    /// Only records with an id below this one (the cursor for the next page).
    pub before_id: Option<String>,
    /// At most this many records.
    pub limit: u32,
}

pub use crate::sql::rollups::Dimension;

impl crate::Store {
    /// Deletes hourly rollups of hours that ended before `before_ms` (whole hours only);
    /// returns how many rows went.
    pub async fn prune_rollups(&self, before_ms: i64) -> Result<u64, crate::StoreError> {
        crate::on_backend!(self, s => s.prune_rollups(before_ms))
    }

    /// The first UTC hour (Unix milliseconds) `deployment` served a request, if ever: where a
    /// self-hosted pool's hours start counting in reports.
    pub async fn first_served_hour(&self, deployment: &str) -> Result<Option<i64>, crate::StoreError> {
        crate::on_backend!(self, s => s.first_served_hour(deployment))
    }

    /// Usage sums from the hourly rollups, grouped by `by` (no grouping: one total row), over
    /// the hours starting in `[from_ms, to_ms)`, optionally only where `only`'s dimension has
    /// that value. Each row: the group's values, in `by`'s order, and its totals.
    pub async fn report(
        &self,
        by: &[Dimension],
        from_ms: i64,
        to_ms: i64,
        only: Option<(Dimension, &str)>,
    ) -> Result<Vec<(Vec<String>, moat_core::rollup::Totals)>, crate::StoreError> {
        crate::on_backend!(self, s => s.report(by, from_ms, to_ms, only))
    }
}
