use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A shipping address; `country` is an ISO 3166-1 alpha-2 code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShippingAddress {
    pub name: String,
    pub line1: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    #[schema(example = "DE")]
    pub country: String,
}

fn bounded(value: &str, max: usize) -> bool {
    let trimmed = value.trim();
    !trimmed.is_empty() && trimmed.chars().count() <= max && !trimmed.chars().any(char::is_control)
}

impl ShippingAddress {
    /// Field problems as (JSON pointer below the address, message).
    pub fn problems(&self) -> Vec<(&'static str, &'static str)> {
        let mut problems = Vec::new();
        if !bounded(&self.name, 100) {
            problems.push(("/name", "name must be 1 to 100 characters"));
        }
        if !bounded(&self.line1, 200) {
            problems.push(("/line1", "line1 must be 1 to 200 characters"));
        }
        if self
            .line2
            .as_deref()
            .is_some_and(|l| !l.trim().is_empty() && !bounded(l, 200))
        {
            problems.push(("/line2", "line2 must be at most 200 characters"));
        }
        if !bounded(&self.city, 100) {
            problems.push(("/city", "city must be 1 to 100 characters"));
        }
        if !bounded(&self.postal_code, 20) {
            problems.push(("/postal_code", "postal_code must be 1 to 20 characters"));
        }
        if self.country.len() != 2 || !self.country.bytes().all(|b| b.is_ascii_uppercase()) {
            problems.push((
                "/country",
                "country must be an ISO 3166-1 alpha-2 code such as DE",
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A field that breaks its rule: empty, only blanks, too long or with a control character.
    fn broken(max: usize) -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just("   ".to_owned()),
            Just("x".repeat(max + 1)),
            "[a-z]{1,10}".prop_map(|s| format!("{s}\u{7}{s}")),
        ]
    }

    fn valid() -> impl Strategy<Value = ShippingAddress> {
        (
            "[A-Za-z][A-Za-z .'-]{0,40}",
            "[0-9]{1,4} [A-Za-z ]{1,60}",
            proptest::option::of("[A-Za-z0-9 ,]{0,60}"),
            "[A-Za-z][A-Za-z -]{0,40}",
            "[A-Z0-9][A-Z0-9 -]{0,9}",
            "[A-Z]{2}",
        )
            .prop_map(
                |(name, line1, line2, city, postal_code, country)| ShippingAddress {
                    name,
                    line1,
                    line2,
                    city,
                    postal_code,
                    country,
                },
            )
    }

    proptest! {
        /// Breaking any one field of a good address is reported on that field alone.
        #[test]
        fn each_broken_field_is_named_alone(
            address in valid(),
            field in 0usize..6,
            name in broken(100),
            line1 in broken(200),
            line2 in "x{201}|[a-z]{1,5}\u{1b}",
            city in broken(100),
            postal_code in broken(20),
            country in "[a-z]{2}|[A-Z]{1}|[A-Z]{3}|D1",
        ) {
            prop_assert!(address.problems().is_empty(), "{address:?}");
            let mut wrong = address;
            let pointer = match field {
                0 => { wrong.name = name; "/name" }
                1 => { wrong.line1 = line1; "/line1" }
                2 => { wrong.line2 = Some(line2); "/line2" }
                3 => { wrong.city = city; "/city" }
                4 => { wrong.postal_code = postal_code; "/postal_code" }
                _ => { wrong.country = country; "/country" }
            };
            let named: Vec<&str> = wrong.problems().into_iter().map(|(p, _)| p).collect();
            prop_assert_eq!(named, vec![pointer]);
        }
    }
}
