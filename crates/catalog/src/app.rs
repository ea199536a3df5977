//! The catalog use cases. Every change commits with its event through the outbox.

use std::sync::Arc;

use events::Envelope;
use events::contract::catalog::{ProductArchivedV1, ProductCreatedV1, ProductUpdatedV1};
use events::contract::{EventKind, Price};
use events::outbox::Outbox;
use platform::db::Db;
use uuid::Uuid;

use crate::cache::{Lookup, ProductCache};
use crate::domain::{Cursor, ListQuery, NewProduct, Product, ProductPatch, edit_allowed};
use crate::search_index::MemorySearch;
use crate::store::{ProductStore, StoreError, sort_key};

pub const SOURCE: &str = "commercex/catalog";

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("a product with this sku already exists")]
    DuplicateSku,
    #[error("no such product")]
    NotFound,
    #[error("the product changed since it was read; fetch it again")]
    Stale,
    /// A fault of ours (a database that failed or could not be reached, a broken invariant),
    /// with its cause.
    #[error("internal error")]
    Internal(#[source] platform::BoxError),
}

impl From<StoreError> for CatalogError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::DuplicateSku => Self::DuplicateSku,
            StoreError::VersionConflict => Self::Stale,
            other => Self::Internal(other.into()),
        }
    }
}

impl From<sqlx::Error> for CatalogError {
    fn from(error: sqlx::Error) -> Self {
        Self::Internal(error.into())
    }
}

/// A page of products and the cursor of the next one.
pub struct Page {
    pub items: Vec<Product>,
    pub next: Option<Cursor>,
}

pub struct Catalog {
    db: Db,
    outbox: Outbox,
    products: ProductStore,
    cache: Arc<dyn ProductCache>,
    /// Listings and searches answered from memory (`search_index`).
    search: Option<Arc<MemorySearch>>,
}

fn price_of(product: &Product) -> Price {
    Price {
        amount: product.price.amount(),
        currency: product.price.currency().code(),
    }
}

fn visible(found: Option<Product>, include_archived: bool) -> Result<Product, CatalogError> {
    match found {
        Some(product) if include_archived || !product.is_archived() => Ok(product),
        _ => Err(CatalogError::NotFound),
    }
}

impl Catalog {
    pub fn new(
        db: Db,
        outbox: Outbox,
        cache: Arc<dyn ProductCache>,
        search: Option<Arc<MemorySearch>>,
    ) -> Self {
        Self {
            products: ProductStore::new(db.clone()),
            db,
            outbox,
            cache,
            search,
        }
    }

    /// What follows a committed change of product `id`: its cached copy goes, and the
    /// search index reads it again.
    async fn changed(&self, id: Uuid) {
        self.cache.forget(id).await;
        if let Some(search) = &self.search {
            search.changed(id);
        }
    }

    pub async fn create(&self, new: NewProduct) -> Result<Product, CatalogError> {
        let mut tx = self.db.begin_as("create product").await?;
        let product = self.products.insert(&mut tx, &new).await?;
        let event = ProductCreatedV1 {
            product_id: product.id,
            sku: product.sku.as_str().to_owned(),
            name: product.name.as_str().to_owned(),
            price: price_of(&product),
            category: product.category.as_str().to_owned(),
        };
        let envelope = Envelope::of(SOURCE, product.id.to_string(), &event);
        self.outbox
            .enqueue(&mut tx, ProductCreatedV1::TOPIC, &envelope)
            .await?;
        tx.commit().await?;
        self.changed(product.id).await;
        Ok(product)
    }

    /// A product; archived ones only for admins. Read through the cache.
    pub async fn get(&self, id: Uuid, include_archived: bool) -> Result<Product, CatalogError> {
        let found = match self.cache.get(id).await {
            Lookup::Hit(cached) => Some(cached),
            Lookup::Miss { ticket } => {
                let found = self.products.find(id).await?;
                if let (Some(product), Some(ticket)) = (&found, ticket) {
                    self.cache.put(product, ticket).await;
                }
                found
            }
        };
        visible(found, include_archived)
    }

    /// Applies `patch` if `if_match` (when given) names the current version.
    pub async fn update(
        &self,
        id: Uuid,
        patch: ProductPatch,
        if_match: Option<&str>,
    ) -> Result<Product, CatalogError> {
        // A change starts from the database, never from a cached copy.
        let mut product = visible(self.products.find(id).await?, false)?;
        if if_match.is_some_and(|header| !edit_allowed(header, &product)) {
            return Err(CatalogError::Stale);
        }
        let read_version = product.version;
        product.apply(patch);
        let mut tx = self.db.begin_as("update product").await?;
        self.products
            .update(&mut tx, &mut product, read_version)
            .await?;
        let event = ProductUpdatedV1 {
            product_id: product.id,
            sku: product.sku.as_str().to_owned(),
            name: product.name.as_str().to_owned(),
            price: price_of(&product),
            category: product.category.as_str().to_owned(),
            version: product.version,
        };
        let envelope = Envelope::of(SOURCE, product.id.to_string(), &event);
        self.outbox
            .enqueue(&mut tx, ProductUpdatedV1::TOPIC, &envelope)
            .await?;
        tx.commit().await?;
        self.changed(id).await;
        Ok(product)
    }

    pub async fn archive(&self, id: Uuid) -> Result<(), CatalogError> {
        let mut tx = self.db.begin_as("archive product").await?;
        if !self.products.archive(&mut tx, id).await? {
            return Err(CatalogError::NotFound);
        }
        let envelope = Envelope::of(
            SOURCE,
            id.to_string(),
            &ProductArchivedV1 { product_id: id },
        );
        self.outbox
            .enqueue(&mut tx, ProductArchivedV1::TOPIC, &envelope)
            .await?;
        tx.commit().await?;
        self.changed(id).await;
        Ok(())
    }

    pub async fn list(&self, query: &ListQuery) -> Result<Page, CatalogError> {
        let from_memory = match &self.search {
            Some(index) => {
                index
                    .list(&self.products, query, query.search.as_ref())
                    .await?
            }
            None => None,
        };
        let mut rows = match from_memory {
            Some(rows) => rows,
            None => self.products.list(query).await?,
        };
        let limit = query.limit as usize;
        let next = (rows.len() > limit).then(|| {
            rows.truncate(limit);
            rows.last().map(|(product, score)| Cursor {
                sort: query.sort,
                key: sort_key(product, *score, query.sort),
                id: product.id,
            })
        });
        Ok(Page {
            items: rows.into_iter().map(|(product, _)| product).collect(),
            next: next.flatten(),
        })
    }

    pub(crate) fn store(&self) -> &ProductStore {
        &self.products
    }

    pub(crate) fn cache(&self) -> &Arc<dyn ProductCache> {
        &self.cache
    }

    pub(crate) fn search(&self) -> Option<&Arc<MemorySearch>> {
        self.search.as_ref()
    }
}
