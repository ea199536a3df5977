//! Money: an integer amount in the currency's minor units (cents) and an ISO 4217 currency.
//! Never floating point.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An ISO 4217 currency code that exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency(iso_currency::Currency);

impl Currency {
    pub fn parse(code: &str) -> Result<Self, &'static str> {
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err("currency must be a three-letter ISO 4217 code in capitals, e.g. EUR");
        }
        iso_currency::Currency::from_code(code)
            .map(Self)
            .ok_or("currency is not a known ISO 4217 code")
    }

    pub fn code(&self) -> String {
        self.0.code().to_owned()
    }

    /// Digits after the decimal point in this currency's major units (2 for EUR, 0 for JPY).
    pub fn decimals(&self) -> u32 {
        u32::from(self.0.exponent().unwrap_or(0))
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.code())
    }
}

/// A positive price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Money {
    amount: i64,
    currency: Currency,
}

impl Money {
    pub fn new(amount: i64, currency: Currency) -> Self {
        Self { amount, currency }
    }

    /// A price written in major units (`19.99`, `20`), with no more decimals than the
    /// currency has.
    pub fn parse_major(text: &str, currency: Currency) -> Result<Self, &'static str> {
        const WRONG: &str =
            "a price is a positive number with at most the currency's decimals, e.g. 19.99";
        let text = text.trim();
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let decimals = currency.decimals() as usize;
        let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits(whole) || !digits(fraction) || fraction.len() > decimals {
            return Err(WRONG);
        }
        let minor = format!("{whole}{fraction:0<decimals$}");
        let amount = minor.parse::<i64>().map_err(|_| WRONG)?;
        Self::price(amount, currency)
    }

    /// A price: strictly positive.
    pub fn price(amount: i64, currency: Currency) -> Result<Self, &'static str> {
        if amount <= 0 {
            return Err("amount must be a positive integer in minor units (cents)");
        }
        Ok(Self { amount, currency })
    }

    pub fn amount(&self) -> i64 {
        self.amount
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }
}

/// `19.99 EUR`: the amount in major units, with as many decimals as the currency has.
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let decimals = self.currency.decimals();
        let scale = 10_i64.pow(decimals);
        let sign = if self.amount < 0 { "-" } else { "" };
        let (major, minor) = (self.amount.abs() / scale, self.amount.abs() % scale);
        match decimals {
            0 => write!(f, "{sign}{major} {}", self.currency),
            _ => write!(
                f,
                "{sign}{major}.{minor:0width$} {}",
                self.currency,
                width = decimals as usize
            ),
        }
    }
}

/// Money on the wire: `{"amount": 1999, "currency": "EUR"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoneyDto {
    /// Integer amount in the currency's minor units (cents).
    #[schema(example = 1999)]
    pub amount: i64,
    /// ISO 4217 code.
    #[schema(example = "EUR")]
    pub currency: String,
}

impl From<Money> for MoneyDto {
    fn from(money: Money) -> Self {
        Self {
            amount: money.amount,
            currency: money.currency.code(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_read_from_major_units() {
        let eur = Currency::parse("EUR").unwrap();
        let jpy = Currency::parse("JPY").unwrap();
        let amount = |text, currency| Money::parse_major(text, currency).map(|m| m.amount());
        assert_eq!(amount("19.99", eur), Ok(1999));
        assert_eq!(amount(" 20 ", eur), Ok(2000));
        assert_eq!(amount("0.5", eur), Ok(50));
        assert_eq!(amount("1500", jpy), Ok(1500));
        for wrong in [
            "",
            "1.999",
            "-5",
            "1,50",
            "abc",
            "0",
            ".5",
            "99999999999999999999",
        ] {
            assert!(Money::parse_major(wrong, eur).is_err(), "{wrong}");
        }
        assert!(Money::parse_major("1.5", jpy).is_err());
    }

    #[test]
    fn money_reads_in_major_units_with_the_currencys_decimals() {
        let money = |amount, code| Money::new(amount, Currency::parse(code).unwrap()).to_string();
        assert_eq!(money(1999, "EUR"), "19.99 EUR");
        assert_eq!(money(5, "USD"), "0.05 USD");
        assert_eq!(money(-1250, "GBP"), "-12.50 GBP");
        assert_eq!(money(1500, "JPY"), "1500 JPY");
        assert_eq!(money(1234, "KWD"), "1.234 KWD");
    }

    #[test]
    fn currencies_must_exist() {
        assert_eq!(Currency::parse("EUR").unwrap().code(), "EUR");
        assert!(Currency::parse("eur").is_err());
        assert!(Currency::parse("XYZ").is_err());
        assert!(Currency::parse("EURO").is_err());
    }

    proptest::proptest! {
        /// Three capital letters are a currency exactly when ISO 4217 knows them, and the
        /// code reads back as given; anything else is refused.
        #[test]
        fn a_currency_is_a_known_code(code in "[A-Z]{3}|\\PC{0,5}") {
            match Currency::parse(&code) {
                Ok(currency) => proptest::prop_assert_eq!(currency.code(), code),
                Err(_) => proptest::prop_assert!(
                    iso_currency::Currency::from_code(&code).is_none()
                        || !code.bytes().all(|b| b.is_ascii_uppercase())
                ),
            }
        }

        /// A price is any strictly positive amount, kept to the minor unit.
        #[test]
        fn a_price_is_positive_and_exact(amount in proptest::num::i64::ANY) {
            let eur = Currency::parse("EUR").unwrap();
            match Money::price(amount, eur) {
                Ok(price) => {
                    proptest::prop_assert!(amount > 0);
                    proptest::prop_assert_eq!(MoneyDto::from(price), MoneyDto { amount, currency: "EUR".into() });
                }
                Err(_) => proptest::prop_assert!(amount <= 0),
            }
        }
    }

    #[test]
    fn prices_are_positive() {
        let eur = Currency::parse("EUR").unwrap();
        assert!(Money::price(0, eur).is_err());
        assert!(Money::price(-5, eur).is_err());
        assert_eq!(Money::price(1999, eur).unwrap().amount(), 1999);
    }
}
