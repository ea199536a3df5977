//! Request and response bodies, and their parsing into domain types.

use chrono::{DateTime, Utc};
use platform::money::{Currency, Money, MoneyDto};
use platform::{ApiError, FieldError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::domain::{
    Attributes, Category, Cursor, Description, ListQuery, NewProduct, Product, ProductName,
    ProductPatch, SearchTerms, Sku, Sort,
};

type JsonMap = serde_json::Map<String, serde_json::Value>;

/// Collects field errors while parsing a request, so all of them are reported at once.
#[derive(Default)]
struct Problems(Vec<FieldError>);

impl Problems {
    fn check<T>(&mut self, field: &str, result: Result<T, &'static str>) -> Option<T> {
        result
            .map_err(|e| self.0.push(FieldError::new(field, "invalid", e)))
            .ok()
    }

    fn finish<T>(self, value: Option<T>) -> Result<T, ApiError> {
        match value {
            Some(value) if self.0.is_empty() => Ok(value),
            _ => Err(ApiError::Validation(self.0)),
        }
    }
}

fn price(problems: &mut Problems, dto: &MoneyDto) -> Option<Money> {
    let currency = problems.check("/price/currency", Currency::parse(&dto.currency))?;
    problems.check("/price/amount", Money::price(dto.amount, currency))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProductRequest {
    #[schema(example = "HP-100")]
    pub sku: String,
    #[schema(example = "Wireless headphones")]
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub price: MoneyDto,
    #[schema(example = "audio")]
    pub category: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub attributes: JsonMap,
}

impl CreateProductRequest {
    pub fn parse(self) -> Result<NewProduct, ApiError> {
        let mut problems = Problems::default();
        let sku = problems.check("/sku", Sku::parse(&self.sku));
        let name = problems.check("/name", ProductName::parse(&self.name));
        let description = problems.check("/description", Description::parse(&self.description));
        let price = price(&mut problems, &self.price);
        let category = problems.check("/category", Category::parse(&self.category));
        let attributes = problems.check("/attributes", Attributes::parse(self.attributes));
        let product = (|| {
            Some(NewProduct {
                sku: sku?,
                name: name?,
                description: description?,
                price: price?,
                category: category?,
                attributes: attributes?,
            })
        })();
        problems.finish(product)
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchProductRequest {
    pub name: Option<String>,
    pub description: Option<String>,
    pub price: Option<MoneyDto>,
    pub category: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<JsonMap>,
}

impl PatchProductRequest {
    pub fn parse(self) -> Result<ProductPatch, ApiError> {
        let mut problems = Problems::default();
        let patch = ProductPatch {
            name: self
                .name
                .and_then(|v| problems.check("/name", ProductName::parse(&v))),
            description: self
                .description
                .and_then(|v| problems.check("/description", Description::parse(&v))),
            price: self.price.and_then(|v| price(&mut problems, &v)),
            category: self
                .category
                .and_then(|v| problems.check("/category", Category::parse(&v))),
            attributes: self
                .attributes
                .and_then(|v| problems.check("/attributes", Attributes::parse(v))),
        };
        if problems.0.is_empty() && patch.is_empty() {
            return Err(ApiError::validation(
                "",
                "empty",
                "the patch changes nothing",
            ));
        }
        problems.finish(Some(patch))
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProductResponse {
    pub id: Uuid,
    pub sku: String,
    pub name: String,
    pub description: String,
    pub price: MoneyDto,
    pub category: String,
    #[schema(value_type = Object)]
    pub attributes: JsonMap,
    /// Units that can be ordered now (eventually consistent with inventory).
    pub available: i64,
    pub archived: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Product> for ProductResponse {
    fn from(product: Product) -> Self {
        Self {
            id: product.id,
            sku: product.sku.as_str().to_owned(),
            name: product.name.as_str().to_owned(),
            description: product.description.as_str().to_owned(),
            price: product.price.into(),
            category: product.category.as_str().to_owned(),
            attributes: product.attributes.as_map().clone(),
            available: product.available,
            archived: product.is_archived(),
            created_at: product.created_at,
            updated_at: product.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Words to find in name and description.
    pub q: Option<String>,
    pub category: Option<String>,
    /// Minor units, inclusive.
    pub min_price: Option<i64>,
    /// Minor units, inclusive.
    pub max_price: Option<i64>,
    pub in_stock: Option<bool>,
    /// `relevance` (default with `q`), `price`, `-price`, `name`, `-created_at` (default).
    pub sort: Option<String>,
    /// 1 to 100, default 20.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl ListParams {
    pub fn parse(self) -> Result<ListQuery, ApiError> {
        let mut problems = Problems::default();
        let search = match &self.q {
            Some(q) => problems.check("q", SearchTerms::parse(q)).flatten(),
            None => None,
        };
        let category = self
            .category
            .and_then(|c| problems.check("category", Category::parse(&c)));
        let sort = match (&self.sort, &search) {
            (Some(sort), _) => problems.check("sort", Sort::parse(sort)),
            (None, Some(_)) => Some(Sort::Relevance),
            (None, None) => Some(Sort::NewestFirst),
        };
        let limit = problems.check(
            "limit",
            match self.limit.unwrap_or(20) {
                limit @ 1..=100 => Ok(limit),
                _ => Err("limit must be between 1 and 100"),
            },
        );
        for (field, value) in [("min_price", self.min_price), ("max_price", self.max_price)] {
            if value.is_some_and(|v| v < 0) {
                problems
                    .0
                    .push(FieldError::new(field, "invalid", "prices are not negative"));
            }
        }
        if let (Some(min), Some(max)) = (self.min_price, self.max_price)
            && min > max
        {
            problems.0.push(FieldError::new(
                "min_price",
                "invalid",
                "min_price is above max_price",
            ));
        }
        let after = self
            .cursor
            .and_then(|c| problems.check("cursor", Cursor::decode(&c)));
        if let (Some(after), Some(sort)) = (&after, sort)
            && after.sort != sort
        {
            problems.0.push(FieldError::new(
                "cursor",
                "invalid",
                "the cursor belongs to another sort order",
            ));
        }
        let query = (|| {
            Some(ListQuery {
                search,
                category,
                min_price: self.min_price,
                max_price: self.max_price,
                in_stock: self.in_stock.unwrap_or(false),
                sort: sort?,
                limit: limit?,
                after,
            })
        })();
        problems.finish(query)
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProductPage {
    pub items: Vec<ProductResponse>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}
