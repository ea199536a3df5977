//! Catalog rules with no I/O: what a valid product is, how it changes, and how listings are
//! ordered and paged.

mod fields;
mod listing;
mod product;

pub use fields::{Attributes, Category, Description, ProductName, Sku};
pub use listing::{
    Cursor, CursorKey, ListQuery, SearchTerms, SearchWord, Sort, fuzzy_trigrams, trigrams,
};
#[cfg(test)]
pub(crate) use product::sample_product;
pub use product::{NewProduct, Product, ProductPatch, edit_allowed, etag_matches};
