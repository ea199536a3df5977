//! SQL for products. One query set for SQLite and PostgreSQL; listings are built from the
//! query's filters with bound parameters only.

pub mod row;
mod search;

use platform::db::{Backend, Db, is_unique_violation, literal_limit};
use platform::time::to_millis;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use uuid::Uuid;

use crate::domain::{Cursor, CursorKey, ListQuery, NewProduct, Product, Sort};
use row::StoredProduct;
use search::Binds;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a product with this sku already exists")]
    DuplicateSku,
    #[error("the product changed since it was read")]
    VersionConflict,
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// Kept as the cause (not transparent), so that what decides the answer finds the
    /// `sqlx::Error` in the chain and can tell an unreachable database from a bug.
    #[error("database error")]
    Db(#[from] sqlx::Error),
}

#[derive(Debug, Clone)]
pub struct ProductStore {
    db: Db,
    /// SQLite: what the search index counts, to look words up by their rarest trigrams.
    trigrams: std::sync::Arc<search::TrigramCounts>,
    /// PostgreSQL: the same counts, taken per trigram when a search first needs it.
    counted_on_demand: std::sync::Arc<search::CountedOnDemand>,
}

const COLUMNS: &str = "id, sku, name, description, price_amount, currency, category, attributes, \
                       available, version, archived_at, created_at, updated_at";
/// `COLUMNS` of a table named `p`.
const PREFIXED_COLUMNS: &str = "p.id, p.sku, p.name, p.description, p.price_amount, p.currency, \
                                p.category, p.attributes, p.available, p.version, p.archived_at, \
                                p.created_at, p.updated_at";

impl ProductStore {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            trigrams: Default::default(),
            counted_on_demand: Default::default(),
        }
    }

    pub async fn insert(
        &self,
        tx: &mut Transaction<'static, Any>,
        new: &NewProduct,
    ) -> Result<Product, StoreError> {
        let now = platform::time::now();
        let product = Product {
            id: Uuid::now_v7(),
            sku: new.sku.clone(),
            name: new.name.clone(),
            description: new.description.clone(),
            price: new.price,
            category: new.category.clone(),
            attributes: new.attributes.clone(),
            available: 0,
            version: 1,
            archived_at: None,
            created_at: now,
            updated_at: now,
        };
        let inserted = sqlx::query(
            "INSERT INTO products (id, sku, name, description, price_amount, currency, category, attributes, \
             search_name, search_description, available, version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, 1, $11, $11)",
        )
        .bind(product.id.to_string())
        .bind(product.sku.as_str())
        .bind(product.name.as_str())
        .bind(product.description.as_str())
        .bind(product.price.amount())
        .bind(product.price.currency().code())
        .bind(product.category.as_str())
        .bind(product.attributes.to_json())
        .bind(product.name.as_str().to_lowercase())
        .bind(product.description.as_str().to_lowercase())
        .bind(to_millis(now))
        .execute(&mut **tx)
        .await;
        match inserted {
            Err(error) if is_unique_violation(&error) => Err(StoreError::DuplicateSku),
            Err(error) => Err(error.into()),
            Ok(_) => Ok(product),
        }
    }

    pub async fn find(&self, id: Uuid) -> Result<Option<Product>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM products WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(self.db.pool())
            .await?;
        row.as_ref().map(read).transpose()
    }

    /// Every product, archived ones included.
    pub async fn all(&self) -> Result<Vec<Product>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM products");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.db.pool())
            .await?;
        rows.iter().map(read).collect()
    }

    /// The products among `ids` that exist.
    pub async fn find_many(&self, ids: &[Uuid]) -> Result<Vec<Product>, StoreError> {
        let mut found = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let mut sql = Binds::default();
            let placeholders: Vec<String> =
                chunk.iter().map(|id| sql.text(id.to_string())).collect();
            let text = format!(
                "SELECT {COLUMNS} FROM products WHERE id IN ({})",
                placeholders.join(", ")
            );
            let rows = sql
                .bind_to(sqlx::query(sqlx::AssertSqlSafe(text)))
                .fetch_all(self.db.pool())
                .await?;
            for row in &rows {
                found.push(read(row)?);
            }
        }
        Ok(found)
    }

    /// Saves `product`'s fields if the stored version is still `expected_version`, bumping it.
    pub async fn update(
        &self,
        tx: &mut Transaction<'static, Any>,
        product: &mut Product,
        expected_version: i64,
    ) -> Result<(), StoreError> {
        let now = platform::time::now();
        let updated = sqlx::query(
            "UPDATE products SET name = $1, description = $2, price_amount = $3, currency = $4, category = $5, \
             attributes = $6, search_name = $7, search_description = $8, version = version + 1, updated_at = $9 \
             WHERE id = $10 AND version = $11",
        )
        .bind(product.name.as_str())
        .bind(product.description.as_str())
        .bind(product.price.amount())
        .bind(product.price.currency().code())
        .bind(product.category.as_str())
        .bind(product.attributes.to_json())
        .bind(product.name.as_str().to_lowercase())
        .bind(product.description.as_str().to_lowercase())
        .bind(to_millis(now))
        .bind(product.id.to_string())
        .bind(expected_version)
        .execute(&mut **tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Err(StoreError::VersionConflict);
        }
        product.version = expected_version + 1;
        product.updated_at = now;
        Ok(())
    }

    /// Archives the product; `false` if it was already archived.
    pub async fn archive(
        &self,
        tx: &mut Transaction<'static, Any>,
        id: Uuid,
    ) -> Result<bool, StoreError> {
        let now = to_millis(platform::time::now());
        let done = sqlx::query(
            "UPDATE products SET archived_at = $1, updated_at = $1, version = version + 1 \
             WHERE id = $2 AND archived_at IS NULL",
        )
        .bind(now)
        .bind(id.to_string())
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The availability read model, fed by inventory events.
    pub async fn set_available(
        &self,
        tx: &mut Transaction<'static, Any>,
        id: Uuid,
        available: i64,
    ) -> Result<(), StoreError> {
        // A stock change that leaves availability as it was (an order's reserved units
        // taken off the shelf) writes nothing, and so tells no catalog instance to read the
        // product again (`changes`).
        sqlx::query("UPDATE products SET available = $1 WHERE id = $2 AND available <> $1")
            .bind(available)
            .bind(id.to_string())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// One page (`limit` + 1 rows, so the caller knows whether there is a next one).
    pub async fn list(&self, query: &ListQuery) -> Result<Vec<(Product, i64)>, StoreError> {
        let mut sql = Binds::default();
        let mut filters = vec!["archived_at IS NULL".to_owned()];
        let search = match &query.search {
            Some(terms) => {
                let words = search::Words::new(terms);
                let anchors = match self.db.backend() {
                    Backend::Sqlite => words.anchors(&*self.trigrams.current(&self.db).await?),
                    Backend::Postgres => {
                        words.anchors(&self.counted_on_demand.of(&self.db, &words).await?)
                    }
                };
                filters.extend(search::candidates(
                    self.db.backend(),
                    &words,
                    &anchors,
                    &mut sql,
                ));
                Some(words.scores(&mut sql))
            }
            None => None,
        };
        if let Some(category) = &query.category {
            let p = sql.text(category.as_str().to_owned());
            filters.push(format!("category = {p}"));
        }
        if let Some(min) = query.min_price {
            let p = sql.int(min);
            filters.push(format!("price_amount >= {p}"));
        }
        if let Some(max) = query.max_price {
            let p = sql.int(max);
            filters.push(format!("price_amount <= {p}"));
        }
        if query.in_stock {
            filters.push("available > 0".to_owned());
        }
        let (key, descending) = match query.sort {
            Sort::Relevance => ("score", true),
            Sort::Price => ("price_amount", false),
            Sort::PriceDesc => ("price_amount", true),
            Sort::Name => ("search_name", false),
            Sort::NewestFirst => ("created_at", true),
        };
        let mut keyset = String::from("1 = 1");
        if let Some(Cursor { key: after, id, .. }) = &query.after {
            let k = match after {
                CursorKey::Int(value) => sql.int(*value),
                CursorKey::Text(value) => sql.text(value.clone()),
            };
            let i = sql.text(id.to_string());
            let beyond = if descending { "<" } else { ">" };
            keyset = format!("(t.{key} {beyond} {k} OR (t.{key} = {k} AND t.id > {i}))");
        }
        // A literal, not a parameter: see `platform::db::literal_limit`.
        let limit = literal_limit(i64::from(query.limit) + 1);
        let direction = if descending { "DESC" } else { "ASC" };
        let filters = filters.join(" AND ");
        let text = match search {
            // Each word's score is computed once, into a table of the candidates' keys (a
            // subquery would be inlined, and its expressions computed again wherever a score
            // is used); a product matches when every word scores. Only the page's products
            // are then read whole.
            Some(scores) => format!(
                "WITH w AS MATERIALIZED (SELECT id, price_amount, search_name, created_at, {} \
                 FROM products WHERE {filters}) \
                 SELECT {PREFIXED_COLUMNS}, page.search_name, page.score FROM \
                 (SELECT * FROM (SELECT w.*, CAST({} AS BIGINT) AS score FROM w WHERE {}) t \
                  WHERE {keyset} ORDER BY t.{key} {direction}, t.id ASC {limit}) page \
                 JOIN products p ON p.id = page.id ORDER BY page.{key} {direction}, page.id ASC",
                scores.columns(),
                scores.total(),
                scores.all_match(),
            ),
            None => format!(
                "SELECT * FROM (SELECT {COLUMNS}, search_name, 0 AS score FROM products WHERE {filters}) t \
                 WHERE {keyset} ORDER BY t.{key} {direction}, t.id ASC {limit}"
            ),
        };
        let rows = sql
            .bind_to(sqlx::query(sqlx::AssertSqlSafe(text)))
            .fetch_all(self.db.pool())
            .await?;
        rows.iter()
            .map(|row| Ok((read(row)?, row.try_get::<i64, _>("score")?)))
            .collect()
    }
}

/// The sort key of `product` for `sort`, as a cursor stores it.
pub fn sort_key(product: &Product, score: i64, sort: Sort) -> CursorKey {
    match sort {
        Sort::Relevance => CursorKey::Int(score),
        Sort::Price | Sort::PriceDesc => CursorKey::Int(product.price.amount()),
        Sort::Name => CursorKey::Text(product.name.as_str().to_lowercase()),
        Sort::NewestFirst => CursorKey::Int(to_millis(product.created_at)),
    }
}

fn read(row: &AnyRow) -> Result<Product, StoreError> {
    StoredProduct::from_row(row)?
        .into_product()
        .map_err(StoreError::Corrupt)
}
