//! Multi-row inserts on PostgreSQL whose text does not depend on the number
//! of rows: each column arrives as one array (`unnest(?::text[], …)`), so
//! diesel prepares the statement once per connection and reuses it. A
//! multi-row `VALUES` list is a new statement for every group size and was
//! parsed, analysed and planned anew for every signup group: about a quarter
//! of PostgreSQL's time under signup load.
//!
//! A statement is a marker type implementing [`Sql`]; its text has one `?`
//! per bind, in order. The marker's type is diesel's cache key, so one type
//! must always mean one text.

use std::marker::PhantomData;

use chrono::NaiveDateTime;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, Integer, Nullable, Text, Timestamp};
use diesel::QueryResult;

/// One statement's text, and the SQL types of its `RETURNING` columns
/// (`()` for a statement that returns nothing: it can only be executed).
pub trait Sql: 'static {
    const SQL: &'static str;
    type Returning;
}

/// A value bound to one `?`.
pub enum Bind<'a> {
    Text(&'a str),
    Int(i32),
    At(NaiveDateTime),
    MaybeAt(Option<NaiveDateTime>),
    Texts(Vec<&'a str>),
    MaybeTexts(Vec<Option<&'a str>>),
}

pub struct Unnest<'a, S> {
    binds: Vec<Bind<'a>>,
    statement: PhantomData<S>,
}

impl<'a, S: Sql> Unnest<'a, S> {
    pub fn new(binds: Vec<Bind<'a>>) -> Self {
        debug_assert_eq!(S::SQL.matches('?').count(), binds.len());
        Self {
            binds,
            statement: PhantomData,
        }
    }
}

impl<S: Sql> QueryId for Unnest<'_, S> {
    type QueryId = S;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<S: Sql> QueryFragment<Pg> for Unnest<'_, S> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let mut parts = S::SQL.split('?');
        if let Some(first) = parts.next() {
            out.push_sql(first);
        }
        for (bind, part) in self.binds.iter().zip(parts) {
            match bind {
                Bind::Text(v) => out.push_bind_param::<Text, _>(v)?,
                Bind::Int(v) => out.push_bind_param::<Integer, _>(v)?,
                Bind::At(v) => out.push_bind_param::<Timestamp, _>(v)?,
                Bind::MaybeAt(v) => out.push_bind_param::<Nullable<Timestamp>, _>(v)?,
                Bind::Texts(v) => out.push_bind_param::<Array<Text>, _>(v)?,
                Bind::MaybeTexts(v) => out.push_bind_param::<Array<Nullable<Text>>, _>(v)?,
            }
            out.push_sql(part);
        }
        Ok(())
    }
}

impl<S: Sql> Query for Unnest<'_, S>
where
    S::Returning: diesel::sql_types::SqlType,
{
    type SqlType = S::Returning;
}

impl<S: Sql> diesel::RunQueryDsl<diesel::PgConnection> for Unnest<'_, S> {}
