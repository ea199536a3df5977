//! The SQL of search. A product matches a query when every word matches: the word occurs in
//! its name or description, or (for words of five or more characters, to forgive typos) at
//! least two thirds of the word's trigrams do. Relevance per word: 3 in the name, 1 in the
//! description; a near miss 2 in the name, 1 anywhere (`SearchWord::score`, which this
//! module computes in SQL with fewer comparisons).
//!
//! The rules are evaluated by the same `LIKE`s on both databases, so both return the same
//! products in the same order. What the index does is narrow the products they are evaluated
//! on: the FTS5 trigram index on SQLite, the pg_trgm GIN indexes on PostgreSQL. A match needs
//! `needed` of a word's `n` trigrams (all of them for an exact match, two thirds for a near
//! miss), so, by the pigeonhole principle, it holds at least one of any `n - needed + 1` of
//! them. The rarest such trigrams (`Words::anchors`) find every possible match while reading
//! as few products as possible: SQLite's index counts the products holding each trigram;
//! on PostgreSQL each trigram a near miss needs is counted when first needed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use platform::db::{Backend, Db};
use sqlx::Row;
use sqlx::any::AnyArguments;
use sqlx::query::Query;

use crate::domain::{CursorKey, SearchTerms, SearchWord};

/// Placeholders and their values, numbered as they are added.
#[derive(Default)]
pub struct Binds {
    values: Vec<CursorKey>,
}

impl Binds {
    pub fn int(&mut self, value: i64) -> String {
        self.values.push(CursorKey::Int(value));
        format!("${}", self.values.len())
    }

    pub fn text(&mut self, value: String) -> String {
        self.values.push(CursorKey::Text(value));
        format!("${}", self.values.len())
    }

    pub fn bind_to<'q>(
        self,
        mut query: Query<'q, sqlx::Any, AnyArguments>,
    ) -> Query<'q, sqlx::Any, AnyArguments> {
        for value in self.values {
            query = match value {
                CursorKey::Int(v) => query.bind(v),
                CursorKey::Text(v) => query.bind(v),
            };
        }
        query
    }
}

/// A query's words. Words contain only letters and digits (see `SearchTerms`), so no
/// `LIKE` wildcard and no FTS5 syntax comes from the caller.
pub struct Words(Vec<SearchWord>);

impl Words {
    pub fn new(terms: &SearchTerms) -> Self {
        Self(terms.words())
    }

    /// Each word's score as a column (`s0`, `s1`, ...), to be summed and tested.
    pub fn scores(&self, sql: &mut Binds) -> Scores {
        Scores(self.0.iter().map(|word| score(word, sql)).collect())
    }
}

/// `SearchWord::score` in SQL, with what follows from the rule used to skip comparisons: a
/// word in the name has all its trigrams there (a near miss in the name and anywhere too:
/// 3 + 2 + 1); a word in the description has all its trigrams anywhere (1 + 1).
fn score(word: &SearchWord, sql: &mut Binds) -> String {
    let pattern = sql.text(format!("%{}%", word.text));
    let in_name = format!("search_name LIKE {pattern}");
    let in_description = format!("search_description LIKE {pattern}");
    let Some((trigrams, needed)) = &word.fuzzy else {
        return format!(
            "(CASE WHEN {in_name} THEN 3 ELSE 0 END + CASE WHEN {in_description} THEN 1 ELSE 0 END)"
        );
    };
    let patterns: Vec<String> = trigrams
        .iter()
        .map(|t| sql.text(format!("%{t}%")))
        .collect();
    let count = |condition: &dyn Fn(&str) -> String| {
        let hits: Vec<String> = patterns
            .iter()
            .map(|p| format!("CASE WHEN {} THEN 1 ELSE 0 END", condition(p)))
            .collect();
        format!("({}) >= {needed}", hits.join(" + "))
    };
    let near_name = count(&|p| format!("search_name LIKE {p}"));
    let near_anywhere = count(&|p| format!("search_name LIKE {p} OR search_description LIKE {p}"));
    format!(
        "(CASE WHEN {in_name} THEN 6 + CASE WHEN {in_description} THEN 1 ELSE 0 END \
         WHEN {in_description} THEN 2 + CASE WHEN {near_name} THEN 2 ELSE 0 END \
         ELSE CASE WHEN {near_name} THEN 2 ELSE 0 END + CASE WHEN {near_anywhere} THEN 1 ELSE 0 END END)"
    )
}

/// Per-word score expressions.
pub struct Scores(Vec<String>);

impl Scores {
    pub fn columns(&self) -> String {
        let columns: Vec<String> = self
            .0
            .iter()
            .enumerate()
            .map(|(n, score)| format!("{score} AS s{n}"))
            .collect();
        columns.join(", ")
    }

    pub fn total(&self) -> String {
        let terms: Vec<String> = (0..self.0.len()).map(|n| format!("s{n}")).collect();
        terms.join(" + ")
    }

    pub fn all_match(&self) -> String {
        let tests: Vec<String> = (0..self.0.len()).map(|n| format!("s{n} > 0")).collect();
        tests.join(" AND ")
    }
}

/// How many products hold each trigram, as the FTS5 index counted them a little while ago
/// (SQLite). Reading the counts costs a pass over the whole index, so they are read at most
/// every `COUNTS_TTL`; they only steer which trigrams to look a word up by (`anchors`), never
/// what matches, so a count that is out of date costs speed, not results.
#[derive(Debug, Default)]
pub struct TrigramCounts {
    counts: std::sync::RwLock<Arc<HashMap<String, i64>>>,
    read_at: tokio::sync::Mutex<Option<Instant>>,
}

const COUNTS_TTL: Duration = Duration::from_secs(60);

impl TrigramCounts {
    /// The counts, read again first if they are older than `COUNTS_TTL` and nobody else is
    /// reading them already (who does not wait uses the old ones).
    pub async fn current(&self, db: &Db) -> Result<Arc<HashMap<String, i64>>, sqlx::Error> {
        if let Ok(mut read_at) = self.read_at.try_lock()
            && read_at.is_none_or(|at| at.elapsed() >= COUNTS_TTL)
        {
            let rows = sqlx::query("SELECT term, doc FROM product_text_terms")
                .fetch_all(db.pool())
                .await?;
            let mut counts = HashMap::with_capacity(rows.len());
            for row in rows {
                counts.insert(
                    row.try_get::<String, _>("term")?,
                    row.try_get::<i64, _>("doc")?,
                );
            }
            *self.write() = Arc::new(counts);
            *read_at = Some(Instant::now());
        }
        Ok(self.read())
    }

    fn read(&self) -> Arc<HashMap<String, i64>> {
        // A panic while holding this lock leaves a map that is still whole.
        self.counts
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Arc<HashMap<String, i64>>> {
        self.counts
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// How many products hold each trigram, on PostgreSQL, where pg_trgm keeps no counts: the
/// trigrams a query needs and lacks are counted together when first needed (one statement)
/// and the counts kept for `COUNTS_TTL`. As on SQLite, a count only steers which trigrams a
/// word is looked up by, never what matches.
#[derive(Debug, Default)]
pub struct CountedOnDemand {
    counts: std::sync::Mutex<HashMap<String, (i64, Instant)>>,
}

impl CountedOnDemand {
    /// The counts of the trigrams of `words`' near misses (exact words need none: their
    /// whole text is looked up).
    pub async fn of(&self, db: &Db, words: &Words) -> Result<HashMap<String, i64>, sqlx::Error> {
        let mut known = HashMap::new();
        let mut missing = Vec::new();
        {
            let kept = self.lock();
            let wanted = words
                .0
                .iter()
                .filter_map(|word| word.fuzzy.as_ref())
                .flat_map(|(trigrams, _)| trigrams);
            for trigram in wanted {
                match kept
                    .get(trigram)
                    .filter(|(_, at)| at.elapsed() < COUNTS_TTL)
                {
                    Some((count, _)) => {
                        known.insert(trigram.clone(), *count);
                    }
                    None if !missing.contains(trigram) => missing.push(trigram.clone()),
                    None => {}
                }
            }
        }
        if missing.is_empty() {
            return Ok(known);
        }
        // Trigrams are letters and digits only (see `SearchTerms`), and bound besides.
        let columns: Vec<String> = (1..=missing.len())
            .map(|n| {
                format!(
                    "COUNT(*) FILTER (WHERE search_name LIKE ${n} OR search_description LIKE ${n})"
                )
            })
            .collect();
        let sql = format!("SELECT {} FROM products", columns.join(", "));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for trigram in &missing {
            query = query.bind(format!("%{trigram}%"));
        }
        let row = query.fetch_one(db.pool()).await?;
        let now = Instant::now();
        let mut kept = self.lock();
        for (column, trigram) in missing.into_iter().enumerate() {
            let count: i64 = row.try_get(column)?;
            kept.insert(trigram.clone(), (count, now));
            known.insert(trigram, count);
        }
        Ok(known)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (i64, Instant)>> {
        // A map of counts is whole whatever panicked while holding it.
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Words {
    /// For each word of three characters or more, the trigrams to look it up by
    /// (`SearchWord::anchors`), with the index's counts.
    pub fn anchors(&self, counts: &HashMap<String, i64>) -> Vec<Vec<String>> {
        self.0
            .iter()
            .filter(|w| w.indexable())
            .map(|word| word.anchors(|t| counts.get(t).copied().unwrap_or(0)))
            .collect()
    }
}

/// Conditions that keep every product that can match, and that the backend's index answers.
/// A word too short for trigrams adds none: the scores test it on what the others let
/// through (or on every product, when no word is long enough).
pub fn candidates(
    backend: Backend,
    words: &Words,
    anchors: &[Vec<String>],
    sql: &mut Binds,
) -> Vec<String> {
    match backend {
        Backend::Sqlite => {
            // Trigrams are letters and digits only: quoted, they are plain FTS5 strings.
            let wanted: Vec<String> = anchors
                .iter()
                .map(|trigrams| {
                    let any: Vec<String> = trigrams.iter().map(|t| format!("\"{t}\"")).collect();
                    format!("({})", any.join(" OR "))
                })
                .collect();
            if wanted.is_empty() {
                return Vec::new();
            }
            let expression = sql.text(wanted.join(" AND "));
            vec![format!(
                "num IN (SELECT rowid FROM product_text WHERE product_text MATCH {expression})"
            )]
        }
        // An exact word is looked up by its whole text; a near miss by its rarest trigrams
        // (`CountedOnDemand`), each a GIN lookup.
        Backend::Postgres => words
            .0
            .iter()
            .filter(|w| w.indexable())
            .zip(anchors)
            .map(|(word, anchors)| {
                let patterns: Vec<String> = match word.fuzzy {
                    Some(_) => anchors.iter().map(|t| sql.text(format!("%{t}%"))).collect(),
                    None => vec![sql.text(format!("%{}%", word.text))],
                };
                let any: Vec<String> = patterns
                    .iter()
                    .map(|p| format!("search_name LIKE {p} OR search_description LIKE {p}"))
                    .collect();
                format!("({})", any.join(" OR "))
            })
            .collect(),
    }
}
