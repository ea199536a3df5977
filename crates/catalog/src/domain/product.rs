use chrono::{DateTime, Utc};
use platform::money::Money;
use uuid::Uuid;

use super::{Attributes, Category, Description, ProductName, Sku};

#[derive(Debug, Clone)]
pub struct NewProduct {
    pub sku: Sku,
    pub name: ProductName,
    pub description: Description,
    pub price: Money,
    pub category: Category,
    pub attributes: Attributes,
}

/// A partial update: `None` leaves the field as it is.
#[derive(Debug, Clone, Default)]
pub struct ProductPatch {
    pub name: Option<ProductName>,
    pub description: Option<Description>,
    pub price: Option<Money>,
    pub category: Option<Category>,
    pub attributes: Option<Attributes>,
}

impl ProductPatch {
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.description.is_none()
            && self.price.is_none()
            && self.category.is_none()
            && self.attributes.is_none()
    }
}

#[derive(Debug, Clone)]
pub struct Product {
    pub id: Uuid,
    pub sku: Sku,
    pub name: ProductName,
    pub description: Description,
    pub price: Money,
    pub category: Category,
    pub attributes: Attributes,
    /// Units that can be ordered now, as last reported by inventory.
    pub available: i64,
    /// Bumped by every change of the product's own fields.
    pub version: i64,
    pub archived_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Product {
    /// The entity tag of the product's representation: it changes when the product changes
    /// and when its availability does.
    pub fn etag(&self) -> String {
        format!("\"{}-{}\"", self.version, self.available)
    }

    pub fn is_archived(&self) -> bool {
        self.archived_at.is_some()
    }

    pub fn apply(&mut self, patch: ProductPatch) {
        if let Some(name) = patch.name {
            self.name = name;
        }
        if let Some(description) = patch.description {
            self.description = description;
        }
        if let Some(price) = patch.price {
            self.price = price;
        }
        if let Some(category) = patch.category {
            self.category = category;
        }
        if let Some(attributes) = patch.attributes {
            self.attributes = attributes;
        }
    }
}

/// Does an `If-Match` header value allow an edit of `product`? Its tags are compared on the
/// product's version only: availability is part of the representation (and of its `ETag`),
/// but no edit sets it, and a stock movement between reading and saving must not turn an
/// editor's save into a conflict.
pub fn edit_allowed(header: &str, product: &Product) -> bool {
    let version = product.version.to_string();
    header.split(',').map(str::trim).any(|candidate| {
        let tag = candidate.trim_start_matches("W/").trim_matches('"');
        candidate == "*" || tag.split_once('-').is_some_and(|(v, _)| v == version)
    })
}

/// Does an `If-None-Match` header value list `etag` (or `*`)?
pub fn etag_matches(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == etag)
}

/// A product for tests: a lamp, 3 available, version 1.
#[cfg(test)]
pub(crate) fn sample_product() -> Product {
    use platform::money::Currency;
    Product {
        id: Uuid::now_v7(),
        sku: Sku::parse("SKU-1").expect("a sku"),
        name: ProductName::parse("Lamp").expect("a name"),
        description: Description::parse("A lamp").expect("a description"),
        price: Money::price(1000, Currency::parse("EUR").expect("EUR")).expect("a price"),
        category: Category::parse("home").expect("a category"),
        attributes: Attributes::parse(serde_json::Map::new()).expect("no attributes"),
        available: 3,
        version: 1,
        archived_at: None,
        created_at: chrono::Utc::now(),
        updated_at: chrono::Utc::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edit_is_allowed_on_the_version_read_whatever_the_availability_did() {
        let mut product = sample_product();
        let read = product.etag();
        product.available += 3;
        assert!(edit_allowed(&read, &product), "stock moved, nobody edited");
        assert!(edit_allowed("*", &product));
        assert!(edit_allowed(&format!("\"x\", W/{read}"), &product));
        product.version += 1;
        assert!(!edit_allowed(&read, &product), "someone edited it");
        assert!(!edit_allowed("\"garbage\"", &product));
    }

    #[test]
    fn etag_lists() {
        assert!(etag_matches("\"3-5\"", "\"3-5\""));
        assert!(etag_matches("\"1-0\", W/\"3-5\"", "\"3-5\""));
        assert!(etag_matches("*", "\"3-5\""));
        assert!(!etag_matches("\"3-4\"", "\"3-5\""));
    }
}
