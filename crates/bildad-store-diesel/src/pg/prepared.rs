//! The prepared-statement cache of the hot paths: `Cached` marks a `sql_query` whose text
//! is a constant as safe to prepare once per connection.

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};

/// A raw SQL statement (`sql_query` with its binds) that the connection prepares once
/// and reuses: diesel refuses to cache `sql_query` statements because their text may be
/// built at run time, which would grow the cache without bound. Only wrap statements
/// whose text is one of a few constants (the hot paths: claim, finalize, expiry, kill,
/// heartbeat, enqueue); each then costs one round trip (bind + execute) instead of two
/// (parse + describe, then bind + execute). The cache is per connection, keyed by the
/// SQL text and the bind types.
#[derive(Debug, Clone)]
pub(crate) struct Cached<Q>(pub(crate) Q);

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Cached<Q> {
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, Pg>) -> diesel::QueryResult<()> {
        self.0.walk_ast(out)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &Pg) -> diesel::QueryResult<bool> {
        Ok(true)
    }
}

impl<Q> QueryId for Cached<Q> {
    type QueryId = ();
    // No static id: the cache is keyed by the SQL text.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for Cached<Q> {
    type SqlType = Q::SqlType;
}
