//! A statement assembled piece by piece (optional filters, multi-row inserts), written twice
//! as it grows: with `$N` placeholders for PostgreSQL, and with anonymous `?` ones for SQLite,
//! whose parameter-name lookup is linear in the parameter count, so binding `$N` names costs
//! quadratic time on a wide multi-row insert (a fifth of the usage writer's CPU).
//!
//! sqlx's own `QueryBuilder` cannot be used in code generic over the database: its argument
//! buffer's lifetime must then equal the builder's borrow, which outlives the builder. Here
//! the values wait in a plain list and are bound when the statement runs.

/// One value to bind.
#[derive(Debug, Clone)]
pub(crate) enum Param {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    Bool(bool),
}

impl From<String> for Param {
    fn from(value: String) -> Self {
        Param::Text(value)
    }
}

impl From<&str> for Param {
    fn from(value: &str) -> Self {
        Param::Text(value.to_owned())
    }
}

impl From<&String> for Param {
    fn from(value: &String) -> Self {
        Param::Text(value.clone())
    }
}

impl From<Option<String>> for Param {
    fn from(value: Option<String>) -> Self {
        Param::OptText(value)
    }
}

impl From<i64> for Param {
    fn from(value: i64) -> Self {
        Param::Int(value)
    }
}

impl From<Option<i64>> for Param {
    fn from(value: Option<i64>) -> Self {
        Param::OptInt(value)
    }
}

impl From<bool> for Param {
    fn from(value: bool) -> Self {
        Param::Bool(value)
    }
}

/// SQL text and the values its placeholders stand for, in order (each bound once, where it
/// appears).
#[derive(Debug, Default)]
pub(crate) struct Statement {
    /// With `$1, $2, …`.
    pub(crate) sql: String,
    /// The same with `?` for each placeholder.
    pub(crate) positional_sql: String,
    pub(crate) params: Vec<Param>,
}

impl Statement {
    pub(crate) fn new(sql: impl Into<String>) -> Self {
        let sql = sql.into();
        Statement { positional_sql: sql.clone(), sql, params: Vec::new() }
    }

    /// Appends SQL text.
    pub(crate) fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self.positional_sql.push_str(sql);
        self
    }

    /// Appends a placeholder for `value`.
    pub(crate) fn bind(&mut self, value: impl Into<Param>) -> &mut Self {
        self.params.push(value.into());
        self.sql.push('$');
        self.sql.push_str(itoa::Buffer::new().format(self.params.len()));
        self.positional_sql.push('?');
        self
    }

    /// The text for a backend: positional placeholders or numbered ones.
    pub(crate) fn text(&self, positional: bool) -> &str {
        if positional { &self.positional_sql } else { &self.sql }
    }

    /// Appends `(v1, v2, ...)` for one row of a multi-row insert.
    pub(crate) fn row(&mut self, values: impl IntoIterator<Item = Param>) -> &mut Self {
        self.push("(");
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind(value);
        }
        self.push(")")
    }
}

/// `items` cut into pieces of at most `max`, every piece one of a handful of sizes (`max`, and
/// powers of four below it), so that a multi-row statement built per piece has only a few
/// distinct texts: the connection's statement cache then parses each once, not once a batch.
pub(crate) fn fixed_size_chunks<T>(items: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    let max = max.max(1);
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let size = if rest.len() >= max {
            max
        } else {
            let mut size = 1;
            while size * 4 <= rest.len() {
                size *= 4;
            }
            size
        };
        let (piece, after) = rest.split_at(size);
        rest = after;
        Some(piece)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_in_order() {
        let mut s = Statement::new("SELECT 1 WHERE a = ");
        s.bind("x").push(" AND b IN ").row([Param::Int(1), Param::Bool(true)]);
        assert_eq!(s.text(false), "SELECT 1 WHERE a = $1 AND b IN ($2, $3)");
        assert_eq!(s.text(true), "SELECT 1 WHERE a = ? AND b IN (?, ?)");
        assert_eq!(s.params.len(), 3);
    }

    #[test]
    fn chunks_take_few_sizes_and_keep_every_item_in_order() {
        let items: Vec<u32> = (0..187).collect();
        let sizes: Vec<usize> = fixed_size_chunks(&items, 64).map(<[u32]>::len).collect();
        assert_eq!(sizes, [64, 64, 16, 16, 16, 4, 4, 1, 1, 1]);
        let joined: Vec<u32> = fixed_size_chunks(&items, 64).flatten().copied().collect();
        assert_eq!(joined, items);
        assert_eq!(fixed_size_chunks::<u32>(&[], 64).count(), 0);
        assert_eq!(fixed_size_chunks(&items[..3], 0).count(), 3, "a zero maximum still makes progress");
    }
}
