//! Listing and search: filters, sort orders, and keyset cursors. A cursor names the sort it
//! was made for and the sort key of the last item returned; the next page starts strictly
//! after it, so walking the pages returns every matching product once, even while products
//! are being added.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Category;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sort {
    #[serde(rename = "relevance")]
    Relevance,
    #[serde(rename = "price")]
    Price,
    #[serde(rename = "-price")]
    PriceDesc,
    #[serde(rename = "name")]
    Name,
    #[serde(rename = "-created_at")]
    NewestFirst,
}

impl Sort {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        match raw {
            "relevance" => Ok(Self::Relevance),
            "price" => Ok(Self::Price),
            "-price" => Ok(Self::PriceDesc),
            "name" => Ok(Self::Name),
            "-created_at" => Ok(Self::NewestFirst),
            _ => Err("sort must be one of relevance, price, -price, name, -created_at"),
        }
    }
}

/// Lower-cased search words: at most 10, each 1 to 64 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchTerms(Vec<String>);

impl SearchTerms {
    pub fn parse(raw: &str) -> Result<Option<Self>, &'static str> {
        if raw.chars().count() > 200 {
            return Err("q must be at most 200 characters");
        }
        let terms: Vec<String> = raw
            .split(|c: char| !c.is_alphanumeric())
            .filter(|t| !t.is_empty())
            .map(str::to_lowercase)
            .take(10)
            .collect();
        Ok((!terms.is_empty()).then_some(Self(terms)))
    }

    pub fn terms(&self) -> &[String] {
        &self.0
    }
}

/// Typo tolerance: a word of five or more characters also matches text that contains at
/// least two thirds of its trigrams ("hedphones" shares 5 of its 7 with "headphones").
/// Returns the trigrams and how many must be present, or `None` for short words, which must
/// match exactly.
pub fn fuzzy_trigrams(term: &str) -> Option<(Vec<String>, usize)> {
    if term.chars().count() < 5 {
        return None;
    }
    let trigrams = trigrams(term);
    let needed = (trigrams.len() * 2).div_ceil(3);
    Some((trigrams, needed))
}

/// A word's distinct trigrams (three consecutive characters), sorted.
pub fn trigrams(term: &str) -> Vec<String> {
    let chars: Vec<char> = term.chars().collect();
    let mut trigrams: Vec<String> = chars.windows(3).map(|w| w.iter().collect()).collect();
    trigrams.sort();
    trigrams.dedup();
    trigrams
}

/// The sort key of the last item of a page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CursorKey {
    Int(i64),
    Text(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(rename = "s")]
    pub sort: Sort,
    #[serde(rename = "k")]
    pub key: CursorKey,
    pub id: Uuid,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// A cursor as this API returned it: one whose key is not of its sort's kind was made or
    /// changed by hand, and would compare a price with a name in SQL.
    pub fn decode(raw: &str) -> Result<Self, &'static str> {
        URL_SAFE_NO_PAD
            .decode(raw)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Self>(&bytes).ok())
            .filter(Self::key_fits_sort)
            .ok_or("cursor is not one this API returned")
    }

    fn key_fits_sort(&self) -> bool {
        match (self.sort, &self.key) {
            (Sort::Name, CursorKey::Text(_)) => true,
            (Sort::Name, CursorKey::Int(_)) => false,
            (_, key) => matches!(key, CursorKey::Int(_)),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ListQuery {
    pub search: Option<SearchTerms>,
    pub category: Option<Category>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub in_stock: bool,
    pub sort: Sort,
    pub limit: u32,
    pub after: Option<Cursor>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let cursor = Cursor {
            sort: Sort::PriceDesc,
            key: CursorKey::Int(1999),
            id: Uuid::now_v7(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()).unwrap(), cursor);
        let named = Cursor {
            sort: Sort::Name,
            key: CursorKey::Text("héadphones".into()),
            id: Uuid::now_v7(),
        };
        assert_eq!(Cursor::decode(&named.encode()).unwrap(), named);
        assert!(Cursor::decode("garbage!").is_err());
    }

    #[test]
    fn a_cursor_whose_key_does_not_fit_its_sort_is_refused() {
        let id = Uuid::now_v7();
        let tampered = [
            (Sort::Price, CursorKey::Text("zzz".into())),
            (Sort::PriceDesc, CursorKey::Text("1".into())),
            (Sort::NewestFirst, CursorKey::Text("x".into())),
            (Sort::Relevance, CursorKey::Text("x".into())),
            (Sort::Name, CursorKey::Int(5)),
        ];
        for (sort, key) in tampered {
            let cursor = Cursor { sort, key, id };
            assert!(Cursor::decode(&cursor.encode()).is_err(), "{cursor:?}");
        }
    }

    #[test]
    fn long_words_tolerate_typos() {
        assert_eq!(fuzzy_trigrams("lamp"), None);
        let (trigrams, needed) = fuzzy_trigrams("hedphones").unwrap();
        assert_eq!(trigrams.len(), 7);
        assert_eq!(needed, 5);
        let target = "wireless headphones";
        assert!(
            trigrams
                .iter()
                .filter(|t| target.contains(t.as_str()))
                .count()
                >= needed
        );
        assert!(
            trigrams
                .iter()
                .filter(|t| "desk lamp".contains(t.as_str()))
                .count()
                < needed
        );
    }

    #[test]
    fn search_terms_are_words() {
        let terms = SearchTerms::parse("Noise-Cancelling  HEADPHONES' OR 1=1;--")
            .unwrap()
            .unwrap();
        assert_eq!(
            terms.terms(),
            ["noise", "cancelling", "headphones", "or", "1", "1"]
        );
        assert_eq!(SearchTerms::parse("  %%% ").unwrap(), None);
    }
}
