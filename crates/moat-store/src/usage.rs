//! Filters for reading usage records back.

/// Which usage records to return. Every field narrows the result; none set means all.
#[derive(Debug, Clone, Default)]
pub struct UsageFilter {
    /// Only this key's records.
    pub key_id: Option<String>,
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
