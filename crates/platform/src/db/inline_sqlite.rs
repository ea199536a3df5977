//! SQLite run on the calling task's thread: a driver of sqlx's `Any`, over rusqlite, registered
//! for `sqlite:` URLs in place of sqlx's own SQLite driver.
//!
//! sqlx's driver runs each connection on a thread of its own and sends it every statement over
//! a channel: 23-25 us of CPU per statement against about 4 us for the statement itself
//! (docs/BENCHMARKS.md, "The statement hop"). Here a statement runs where it is awaited.
//! Every store, the outbox, the inbox and the dead letters go through `Any`, so they run on
//! this driver unchanged.
//!
//! What must not block a runtime worker does not:
//! - a lock held by another connection: SQLite's own busy handler (which sleeps on the
//!   thread) is off, and a statement that finds the database busy outside any transaction is
//!   tried again after an asynchronous pause, until the busy timeout;
//! - a commit that waits for the disk (`synchronous=full`): it runs in `block_in_place`, so
//!   the worker's other tasks move to another thread meanwhile;
//! - checkpoints and migrations do not use this driver at all (`platform::db` runs them on
//!   sqlx's own SQLite connection, on its thread).
//!
//! The driver serves `Any` only: sqlx's `Database` asks for row, column, value and statement
//! types of its own, and here they are [`Unserved`], a type with no values.

mod connection;
mod error;
mod options;

use std::borrow::Cow;

use sqlx::encode::Encode;
use sqlx::error::BoxDynError;
use sqlx::{
    Arguments, Column, ColumnIndex, Database, Either, Row, Statement, Type, Value, ValueRef,
};
use sqlx_core::any::driver::AnyDriver;
use sqlx_core::any::{AnyArgumentBuffer, AnyQueryResult, AnyTypeInfo};

pub use connection::InlineConnection;
pub use options::InlineConnectOptions;

/// The driver to install for `sqlite:` URLs.
pub const DRIVER: AnyDriver = AnyDriver::without_migrate::<InlineSqlite>();

/// SQLite through rusqlite, statements run on the caller's thread.
#[derive(Debug)]
pub struct InlineSqlite;

impl Database for InlineSqlite {
    type Connection = InlineConnection;
    type TransactionManager = connection::Transactions;
    type Row = Unserved;
    type QueryResult = AnyQueryResult;
    type Column = Unserved;
    type TypeInfo = AnyTypeInfo;
    type Value = Unserved;
    type ValueRef<'r> = Unserved;
    type Arguments = InlineArguments;
    type ArgumentBuffer = AnyArgumentBuffer;
    type Statement = Unserved;

    const NAME: &'static str = "SQLite";
    const URL_SCHEMES: &'static [&'static str] = &["sqlite"];
}

/// The row, column, value and statement types of a driver that answers through `Any` alone:
/// none is ever made, so none has a value.
#[derive(Debug, Clone)]
pub enum Unserved {}

impl Row for Unserved {
    type Database = InlineSqlite;

    fn columns(&self) -> &[Unserved] {
        match *self {}
    }

    fn try_get_raw<I: ColumnIndex<Self>>(&self, _: I) -> Result<Unserved, sqlx::Error> {
        match *self {}
    }
}

impl Column for Unserved {
    type Database = InlineSqlite;

    fn ordinal(&self) -> usize {
        match *self {}
    }

    fn name(&self) -> &str {
        match *self {}
    }

    fn type_info(&self) -> &AnyTypeInfo {
        match *self {}
    }
}

impl Value for Unserved {
    type Database = InlineSqlite;

    fn as_ref(&self) -> Unserved {
        match *self {}
    }

    fn type_info(&self) -> Cow<'_, AnyTypeInfo> {
        match *self {}
    }

    fn is_null(&self) -> bool {
        match *self {}
    }
}

impl ValueRef<'_> for Unserved {
    type Database = InlineSqlite;

    fn to_owned(&self) -> Unserved {
        match *self {}
    }

    fn type_info(&self) -> Cow<'_, AnyTypeInfo> {
        match *self {}
    }

    fn is_null(&self) -> bool {
        match *self {}
    }
}

impl Statement for Unserved {
    type Database = InlineSqlite;

    fn into_sql(self) -> sqlx::SqlStr {
        match self {}
    }

    fn sql(&self) -> &sqlx::SqlStr {
        match *self {}
    }

    fn parameters(&self) -> Option<Either<&[AnyTypeInfo], usize>> {
        match *self {}
    }

    fn columns(&self) -> &[Unserved] {
        match *self {}
    }

    fn query(&self) -> sqlx_core::query::Query<'_, InlineSqlite, InlineArguments> {
        match *self {}
    }

    fn query_with<A>(&self, _: A) -> sqlx_core::query::Query<'_, InlineSqlite, A>
    where
        A: sqlx::IntoArguments<InlineSqlite>,
    {
        match *self {}
    }

    fn query_as<O>(&self) -> sqlx_core::query_as::QueryAs<'_, InlineSqlite, O, InlineArguments>
    where
        O: for<'r> sqlx::FromRow<'r, Unserved>,
    {
        match *self {}
    }

    fn query_as_with<'s, O, A>(
        &'s self,
        _: A,
    ) -> sqlx_core::query_as::QueryAs<'s, InlineSqlite, O, A>
    where
        O: for<'r> sqlx::FromRow<'r, Unserved>,
        A: sqlx::IntoArguments<InlineSqlite>,
    {
        match *self {}
    }

    fn query_scalar<O>(
        &self,
    ) -> sqlx_core::query_scalar::QueryScalar<'_, InlineSqlite, O, InlineArguments>
    where
        (O,): for<'r> sqlx::FromRow<'r, Unserved>,
    {
        match *self {}
    }

    fn query_scalar_with<'s, O, A>(
        &'s self,
        _: A,
    ) -> sqlx_core::query_scalar::QueryScalar<'s, InlineSqlite, O, A>
    where
        (O,): for<'r> sqlx::FromRow<'r, Unserved>,
        A: sqlx::IntoArguments<InlineSqlite>,
    {
        match *self {}
    }
}

/// Arguments bound to a statement: `Any`'s values, which the connection binds itself.
#[derive(Default)]
pub struct InlineArguments(AnyArgumentBuffer);

impl Arguments for InlineArguments {
    type Database = InlineSqlite;

    fn reserve(&mut self, additional: usize, _size: usize) {
        self.0.0.reserve(additional);
    }

    fn add<'t, T>(&mut self, value: T) -> Result<(), BoxDynError>
    where
        T: Encode<'t, InlineSqlite> + Type<InlineSqlite>,
    {
        let _: sqlx::encode::IsNull = value.encode(&mut self.0)?;
        Ok(())
    }

    fn len(&self) -> usize {
        self.0.0.len()
    }
}

impl sqlx::IntoArguments<InlineSqlite> for InlineArguments {
    fn into_arguments(self) -> InlineArguments {
        self
    }
}
