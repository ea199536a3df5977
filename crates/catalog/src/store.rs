//! SQL for products. One query set for SQLite and PostgreSQL; listings are built from the
//! query's filters with bound parameters only.

use platform::db::{Db, is_unique_violation, literal_limit};
use platform::time::to_millis;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use uuid::Uuid;

use crate::domain::{Cursor, CursorKey, ListQuery, NewProduct, Product, Sort, fuzzy_trigrams};
use crate::stored::StoredProduct;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a product with this sku already exists")]
    DuplicateSku,
    #[error("the product changed since it was read")]
    VersionConflict,
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

#[derive(Debug, Clone)]
pub struct ProductStore {
    db: Db,
}

const COLUMNS: &str = "id, sku, name, description, price_amount, currency, category, attributes, \
                       available, version, archived_at, created_at, updated_at";

impl ProductStore {
    pub fn new(db: Db) -> Self {
        Self { db }
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
        sqlx::query("UPDATE products SET available = $1 WHERE id = $2")
            .bind(available)
            .bind(id.to_string())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// One page (`limit` + 1 rows, so the caller knows whether there is a next one).
    pub async fn list(&self, query: &ListQuery) -> Result<Vec<(Product, i64)>, StoreError> {
        let mut sql = ListSql::default();
        let words: Vec<WordSql> = query
            .search
            .iter()
            .flat_map(|search| search.terms())
            .map(|term| sql.word(term))
            .collect();
        let score = relevance(&words);
        let mut filters = vec!["archived_at IS NULL".to_owned()];
        for word in &words {
            filters.push(word.matches());
        }
        if let Some(category) = &query.category {
            let p = sql.bind_text(category.as_str().to_owned());
            filters.push(format!("category = {p}"));
        }
        if let Some(min) = query.min_price {
            let p = sql.bind_int(min);
            filters.push(format!("price_amount >= {p}"));
        }
        if let Some(max) = query.max_price {
            let p = sql.bind_int(max);
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
                CursorKey::Int(value) => sql.bind_int(*value),
                CursorKey::Text(value) => sql.bind_text(value.clone()),
            };
            let i = sql.bind_text(id.to_string());
            let beyond = if descending { "<" } else { ">" };
            keyset = format!("(t.{key} {beyond} {k} OR (t.{key} = {k} AND t.id > {i}))");
        }
        // A literal, not a parameter: see `platform::db::literal_limit`.
        let limit = literal_limit(i64::from(query.limit) + 1);
        let direction = if descending { "DESC" } else { "ASC" };
        let text = format!(
            "SELECT * FROM (SELECT {COLUMNS}, search_name, CAST({score} AS BIGINT) AS score FROM products WHERE {}) t \
             WHERE {keyset} ORDER BY t.{key} {direction}, t.id ASC {limit}",
            filters.join(" AND ")
        );
        let mut statement = sqlx::query(sqlx::AssertSqlSafe(text));
        for value in sql.values {
            statement = match value {
                CursorKey::Int(v) => statement.bind(v),
                CursorKey::Text(v) => statement.bind(v),
            };
        }
        let rows = statement.fetch_all(self.db.pool()).await?;
        rows.iter()
            .map(|row| Ok((read(row)?, row.try_get::<i64, _>("score")?)))
            .collect()
    }
}

/// Placeholders and their values, numbered as they are added.
#[derive(Default)]
struct ListSql {
    values: Vec<CursorKey>,
}

impl ListSql {
    fn bind_int(&mut self, value: i64) -> String {
        self.values.push(CursorKey::Int(value));
        format!("${}", self.values.len())
    }

    fn bind_text(&mut self, value: String) -> String {
        self.values.push(CursorKey::Text(value));
        format!("${}", self.values.len())
    }

    /// The conditions for one search word, with its parameters bound.
    fn word(&mut self, term: &str) -> WordSql {
        let pattern = self.bind_text(format!("%{term}%"));
        let (fuzzy_in_name, fuzzy_anywhere) = match fuzzy_trigrams(term) {
            None => (None, None),
            Some((trigrams, needed)) => {
                let params: Vec<String> = trigrams
                    .iter()
                    .map(|t| self.bind_text(format!("%{t}%")))
                    .collect();
                let count = |condition: &dyn Fn(&str) -> String| {
                    let hits: Vec<String> = params
                        .iter()
                        .map(|p| format!("CASE WHEN {} THEN 1 ELSE 0 END", condition(p)))
                        .collect();
                    format!("({}) >= {needed}", hits.join(" + "))
                };
                (
                    Some(count(&|p| format!("search_name LIKE {p}"))),
                    Some(count(&|p| {
                        format!("search_name LIKE {p} OR search_description LIKE {p}")
                    })),
                )
            }
        };
        WordSql {
            in_name: format!("search_name LIKE {pattern}"),
            in_description: format!("search_description LIKE {pattern}"),
            fuzzy_in_name,
            fuzzy_anywhere,
        }
    }
}

/// SQL conditions for one search word. Words contain only letters and digits (see
/// `SearchTerms`), so no LIKE wildcard comes from the caller.
struct WordSql {
    in_name: String,
    in_description: String,
    /// Enough of the word's trigrams occur in the name: a near miss (typo) there.
    fuzzy_in_name: Option<String>,
    /// Enough of them occur in the name and description together.
    fuzzy_anywhere: Option<String>,
}

impl WordSql {
    fn matches(&self) -> String {
        let mut any = vec![self.in_name.clone(), self.in_description.clone()];
        any.extend(self.fuzzy_anywhere.clone());
        format!("({})", any.join(" OR "))
    }
}

/// Relevance, per word: 3 in the name, 1 in the description; a near miss 2 in the name, 1
/// anywhere. Exact matches outrank typos, names outrank descriptions.
fn relevance(words: &[WordSql]) -> String {
    if words.is_empty() {
        return "0".to_owned();
    }
    let weigh =
        |condition: &str, weight: u8| format!("CASE WHEN {condition} THEN {weight} ELSE 0 END");
    let parts: Vec<String> = words
        .iter()
        .map(|word| {
            let mut terms = vec![weigh(&word.in_name, 3), weigh(&word.in_description, 1)];
            terms.extend(word.fuzzy_in_name.as_deref().map(|c| weigh(c, 2)));
            terms.extend(word.fuzzy_anywhere.as_deref().map(|c| weigh(c, 1)));
            format!("({})", terms.join(" + "))
        })
        .collect();
    format!("({})", parts.join(" + "))
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
