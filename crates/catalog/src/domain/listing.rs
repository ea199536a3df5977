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

    /// Each word with its rules of relevance.
    pub fn words(&self) -> Vec<SearchWord> {
        self.0.iter().map(|term| SearchWord::new(term)).collect()
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

/// A search word and the rules of relevance: the word occurs in the name (3) or the
/// description (1); for a word of five characters or more, a near miss (two thirds of its
/// trigrams) in the name (2) or anywhere (1). A product matches a query when every word
/// scores. Names and descriptions are compared lower-cased, as the words are.
#[derive(Debug, Clone)]
pub struct SearchWord {
    pub text: String,
    /// For typo tolerance: the word's distinct trigrams and how many must occur.
    pub fuzzy: Option<(Vec<String>, usize)>,
}

impl SearchWord {
    pub fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            fuzzy: fuzzy_trigrams(text),
        }
    }

    /// Whether a trigram index knows the word: it holds trigrams, so a word needs three
    /// characters.
    pub fn indexable(&self) -> bool {
        self.text.chars().count() >= 3
    }

    /// The word's score against a lower-cased name and description; 0 when it does not
    /// match.
    pub fn score(&self, name: &str, description: &str) -> i64 {
        let in_name = i64::from(name.contains(&self.text));
        let in_description = i64::from(description.contains(&self.text));
        let Some((trigrams, needed)) = &self.fuzzy else {
            return 3 * in_name + in_description;
        };
        let near = |found: &dyn Fn(&str) -> bool| {
            i64::from(trigrams.iter().filter(|t| found(t)).count() >= *needed)
        };
        let near_name = near(&|t| name.contains(t));
        let near_anywhere = near(&|t| name.contains(t) || description.contains(t));
        3 * in_name + in_description + 2 * near_name + near_anywhere
    }

    /// The trigrams to look the word up by in an index that counts the products holding
    /// each (`count`): the `n - needed + 1` rarest of its `n` trigrams, where `needed` is
    /// all `n` for a word that must match exactly and two thirds for a near miss. By the
    /// pigeonhole principle every product that matches the word holds one of them.
    pub fn anchors(&self, count: impl Fn(&str) -> i64) -> Vec<String> {
        let (trigrams, needed) = match &self.fuzzy {
            Some((trigrams, needed)) => (trigrams.clone(), *needed),
            None => {
                let trigrams = trigrams(&self.text);
                let needed = trigrams.len();
                (trigrams, needed)
            }
        };
        let mut by_rarity: Vec<(i64, String)> =
            trigrams.into_iter().map(|t| (count(&t), t)).collect();
        by_rarity.sort();
        let take = by_rarity.len() - needed + 1;
        by_rarity.into_iter().take(take).map(|(_, t)| t).collect()
    }
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
    fn relevance_ranks_the_name_above_the_description_and_forgives_typos() {
        let word = SearchWord::new("headphones");
        let description = "soft cushions for headphones";
        assert_eq!(
            word.score("wireless headphones", ""),
            6,
            "3 + near misses 2 + 1"
        );
        assert_eq!(word.score("wireless headphones", description), 7);
        assert_eq!(
            word.score("ear cushions", description),
            2,
            "1 + near miss anywhere 1"
        );
        assert_eq!(
            word.score("headphone stand", ""),
            3,
            "near misses only: 2 + 1"
        );
        assert_eq!(word.score("desk lamp", "a lamp"), 0);
        let short = SearchWord::new("lamp");
        assert_eq!(short.score("desk lamp", "a lamp for desks"), 4);
        assert_eq!(short.score("desk lump", ""), 0, "short words match exactly");
    }

    #[test]
    fn anchors_are_the_rarest_trigrams_enough_to_find_every_match() {
        let rare = |t: &str| if t == "dph" || t == "adp" { 1 } else { 100 };
        // 8 trigrams, 6 needed for a near miss: any 3 of them hold one of every match's.
        let anchors = SearchWord::new("headphones").anchors(rare);
        assert_eq!(anchors.len(), 3);
        assert_eq!(&anchors[..2], ["adp", "dph"]);
        // An exact word needs all its trigrams: one anchor is enough.
        assert_eq!(SearchWord::new("lamp").anchors(|_| 1), ["amp"]);
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
