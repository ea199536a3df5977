//! Pricing an order at the prices orders knows from the catalog: no I/O, every problem
//! reported at once.

use std::collections::HashMap;

use platform::money::{Currency, Money};
use uuid::Uuid;

use super::{OrderLine, RequestedLine};

/// A product as orders knows it: its copy of the catalog, fed by the catalog's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogProduct {
    pub product_id: Uuid,
    pub sku: String,
    pub name: String,
    pub price: Money,
    pub archived: bool,
}

/// A request field that cannot be placed: its JSON pointer and why.
pub type FieldProblem = (String, String);

/// The order's lines at today's prices, and what they come to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Priced {
    pub lines: Vec<OrderLine>,
    pub total: Money,
}

/// Prices `requested` from `products` (those of its products orders knows). Every line must
/// name a product that can still be ordered, all in one currency, and the total must fit.
pub fn price(
    requested: &[RequestedLine],
    products: &HashMap<Uuid, CatalogProduct>,
) -> Result<Priced, Vec<FieldProblem>> {
    let mut problems = Vec::new();
    let mut lines = Vec::with_capacity(requested.len());
    let mut currency: Option<Currency> = None;
    for (n, line) in requested.iter().enumerate() {
        let field = format!("/items/{n}/product_id");
        match products.get(&line.product_id) {
            Some(product) if !product.archived => {
                if *currency.get_or_insert(product.price.currency()) != product.price.currency() {
                    problems.push((field, "all items must be priced in one currency".to_owned()));
                }
                lines.push(OrderLine {
                    product_id: product.product_id,
                    sku: product.sku.clone(),
                    name: product.name.clone(),
                    unit_price: product.price,
                    quantity: line.quantity,
                });
            }
            _ => problems.push((
                field,
                "no such product, or it can no longer be ordered".to_owned(),
            )),
        }
    }
    let total = lines.iter().try_fold(0i64, |sum, l| {
        l.unit_price
            .amount()
            .checked_mul(l.quantity)
            .and_then(|t| sum.checked_add(t))
    });
    if total.is_none() {
        problems.push(("/items".to_owned(), "the total is too large".to_owned()));
    }
    match (total, currency, problems.is_empty()) {
        (Some(total), Some(currency), true) => Ok(Priced {
            lines,
            total: Money::new(total, currency),
        }),
        _ => Err(problems),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(price: i64, currency: &str) -> CatalogProduct {
        let Ok(currency) = Currency::parse(currency) else {
            panic!("{currency} is a currency")
        };
        CatalogProduct {
            product_id: Uuid::now_v7(),
            sku: "SKU-1".into(),
            name: "A thing".into(),
            price: Money::new(price, currency),
            archived: false,
        }
    }

    fn known(products: &[&CatalogProduct]) -> HashMap<Uuid, CatalogProduct> {
        products
            .iter()
            .map(|p| (p.product_id, (*p).clone()))
            .collect()
    }

    fn line(product: &CatalogProduct, quantity: i64) -> RequestedLine {
        RequestedLine {
            product_id: product.product_id,
            quantity,
        }
    }

    fn fields(problems: Vec<FieldProblem>) -> Vec<String> {
        problems.into_iter().map(|(field, _)| field).collect()
    }

    #[test]
    fn the_total_is_the_sum_of_price_times_quantity() {
        let (a, b) = (product(1_250, "EUR"), product(99, "EUR"));
        let Ok(priced) = price(&[line(&a, 2), line(&b, 3)], &known(&[&a, &b])) else {
            panic!("an order of known products in one currency is priced")
        };
        assert_eq!(priced.total.amount(), 2 * 1_250 + 3 * 99);
        assert_eq!(priced.total.currency().code(), "EUR");
        assert_eq!(priced.lines.len(), 2);
        assert_eq!(priced.lines[1].unit_price, b.price);
    }

    #[test]
    fn unknown_and_archived_products_are_named_by_their_line() {
        let a = product(100, "EUR");
        let mut gone = product(100, "EUR");
        gone.archived = true;
        let stranger = product(100, "EUR");
        let requested = [line(&a, 1), line(&gone, 1), line(&stranger, 1)];
        let Err(problems) = price(&requested, &known(&[&a, &gone])) else {
            panic!("archived and unknown products cannot be ordered")
        };
        assert_eq!(
            fields(problems),
            ["/items/1/product_id", "/items/2/product_id"]
        );
    }

    #[test]
    fn every_line_in_another_currency_than_the_first_is_refused() {
        let (eur, usd, gbp) = (product(1, "EUR"), product(1, "USD"), product(1, "GBP"));
        let requested = [line(&eur, 1), line(&usd, 1), line(&gbp, 1)];
        let Err(problems) = price(&requested, &known(&[&eur, &usd, &gbp])) else {
            panic!("mixed currencies cannot be priced")
        };
        assert_eq!(
            fields(problems),
            ["/items/1/product_id", "/items/2/product_id"]
        );
    }

    #[test]
    fn a_total_that_does_not_fit_is_refused() {
        let dear = product(i64::MAX / 2, "EUR");
        let Err(problems) = price(&[line(&dear, 3)], &known(&[&dear])) else {
            panic!("an overflowing total cannot be priced")
        };
        assert_eq!(fields(problems), ["/items"]);
    }

    proptest::proptest! {
        /// Whatever the prices and quantities, an order is priced at the sum of each line's
        /// price times its quantity, or refused on `/items` exactly when that sum does not fit.
        #[test]
        fn the_total_is_exact_or_refused_when_it_does_not_fit(
            lines in proptest::collection::vec((1i64..=i64::MAX / 100, 1i64..=100), 1..6),
        ) {
            let products: Vec<CatalogProduct> = lines.iter().map(|(p, _)| product(*p, "EUR")).collect();
            let requested: Vec<RequestedLine> = products
                .iter()
                .zip(&lines)
                .map(|(p, (_, quantity))| line(p, *quantity))
                .collect();
            let exact: i128 = lines.iter().map(|(p, q)| i128::from(*p) * i128::from(*q)).sum();
            let known = known(&products.iter().collect::<Vec<_>>());
            match price(&requested, &known) {
                Ok(priced) => proptest::prop_assert_eq!(i128::from(priced.total.amount()), exact),
                Err(problems) => {
                    proptest::prop_assert!(exact > i128::from(i64::MAX));
                    proptest::prop_assert_eq!(fields(problems), vec!["/items".to_owned()]);
                }
            }
        }
    }
}
