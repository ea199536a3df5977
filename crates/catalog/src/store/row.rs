//! A product in its stored form: plain columns, the same for a database row and a cache entry.
//! Turning it back into a `Product` parses every field again, so nothing unchecked gets in.

use platform::money::{Currency, Money};
use platform::time::{from_millis, to_millis};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::domain::{Attributes, Category, Description, Product, ProductName, Sku};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredProduct {
    id: String,
    sku: String,
    name: String,
    description: String,
    price_amount: i64,
    currency: String,
    category: String,
    attributes: String,
    available: i64,
    version: i64,
    archived_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl StoredProduct {
    pub fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            sku: row.try_get("sku")?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            price_amount: row.try_get("price_amount")?,
            currency: row.try_get("currency")?,
            category: row.try_get("category")?,
            attributes: row.try_get("attributes")?,
            available: row.try_get("available")?,
            version: row.try_get("version")?,
            archived_at: row.try_get("archived_at")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    pub fn of(product: &Product) -> Self {
        Self {
            id: product.id.to_string(),
            sku: product.sku.as_str().to_owned(),
            name: product.name.as_str().to_owned(),
            description: product.description.as_str().to_owned(),
            price_amount: product.price.amount(),
            currency: product.price.currency().code(),
            category: product.category.as_str().to_owned(),
            attributes: product.attributes.to_json(),
            available: product.available,
            version: product.version,
            archived_at: product.archived_at.map(to_millis),
            created_at: to_millis(product.created_at),
            updated_at: to_millis(product.updated_at),
        }
    }

    /// The product, or what is wrong with the stored form.
    pub fn into_product(self) -> Result<Product, String> {
        let corrupt = |what: &str, e: &dyn std::fmt::Display| format!("{what}: {e}");
        let currency = Currency::parse(&self.currency).map_err(|e| corrupt("currency", &e))?;
        Ok(Product {
            id: Uuid::parse_str(&self.id).map_err(|e| corrupt("id", &e))?,
            sku: Sku::parse(&self.sku).map_err(|e| corrupt("sku", &e))?,
            name: ProductName::parse(&self.name).map_err(|e| corrupt("name", &e))?,
            description: Description::parse(&self.description)
                .map_err(|e| corrupt("description", &e))?,
            price: Money::new(self.price_amount, currency),
            category: Category::parse(&self.category).map_err(|e| corrupt("category", &e))?,
            attributes: Attributes::from_stored(&self.attributes),
            available: self.available,
            version: self.version,
            archived_at: self.archived_at.map(from_millis),
            created_at: from_millis(self.created_at),
            updated_at: from_millis(self.updated_at),
        })
    }
}
