//! Listings and search over products held in memory: a query is answered from a trigram index
//! in memory rather than by the database (callgrind: ~4.2 M instructions per search of 10,000
//! products through SQLite's FTS5, 70% of it in SQLite; ~0.7 ms of CPU per search through
//! PostgreSQL's trigram indexes, docs/BENCHMARKS.md), and a listing without search words by walking the products kept in the
//! order of its sort from its cursor.
//!
//! The database stays the truth. The index is loaded from it at start-up (or by the first
//! search, if that comes first) and kept in step by reading again, before the next search,
//! every product that changed: `changed` is called right after a change commits here, and for
//! every change any process commits, heard from the database (`changes::follower` on
//! PostgreSQL) or from the bus (the embedded runtime on SQLite, whose files only this process
//! and `commercex seed` write). An index that may have missed changes (its follower lost the
//! database) answers nothing until it is back in step, having read every product again: the
//! database answers meanwhile. Matching and ranking are `SearchWord`'s rules, the ones the SQL
//! computes on both databases; filters, sort orders and cursors are the listing's. Past
//! `capacity` products the index stands down and the database answers.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};

use platform::time::to_millis;
use uuid::Uuid;

use crate::domain::{Cursor, CursorKey, ListQuery, Product, SearchTerms, SearchWord, Sort};
use crate::store::{ProductStore, StoreError};

type Trigram = [char; 3];

pub struct MemorySearch {
    capacity: usize,
    index: tokio::sync::OnceCell<RwLock<Index>>,
    changed: Mutex<Unread>,
    /// Numbers the reads of the database, in the order they took what they read.
    reads: AtomicU64,
    /// Whether every change committed since the index was read is in `changed`.
    in_step: AtomicBool,
}

/// What changed since the index last read it.
#[derive(Default)]
struct Unread {
    products: HashSet<Uuid>,
    /// Every product: changes may have been missed.
    all: bool,
}

impl MemorySearch {
    /// An index for up to `capacity` products, told of every change from the start (this
    /// process makes them, or hears of them through the bus).
    pub fn new(capacity: usize) -> Self {
        Self::with_step(capacity, true)
    }

    /// An index that hears of changes from a follower: it answers once the follower is
    /// listening (`back_in_step`).
    pub fn followed(capacity: usize) -> Self {
        Self::with_step(capacity, false)
    }

    fn with_step(capacity: usize, in_step: bool) -> Self {
        Self {
            capacity,
            index: tokio::sync::OnceCell::new(),
            changed: Mutex::new(Unread::default()),
            reads: AtomicU64::new(0),
            in_step: AtomicBool::new(in_step),
        }
    }

    /// Notes that product `id` changed; call once the change has committed.
    pub fn changed(&self, id: Uuid) {
        self.unread().products.insert(id);
    }

    /// Changes may be passing by unheard: the database answers until `back_in_step`.
    pub fn out_of_step(&self) {
        self.in_step.store(false, AtomicOrdering::SeqCst);
    }

    /// Every change from now on will be heard: the index reads every product again (what
    /// changed while it was out of step included) and answers again.
    pub fn back_in_step(&self) {
        self.unread().all = true;
        self.in_step.store(true, AtomicOrdering::SeqCst);
    }

    /// Reads every product into the index, unless it is loaded already. Call it at start-up,
    /// so that the first search does not wait for it; a search loads it if it is not there.
    pub async fn load(&self, store: &ProductStore) -> Result<(), StoreError> {
        self.loaded(store).await.map(|_| ())
    }

    async fn loaded(&self, store: &ProductStore) -> Result<&RwLock<Index>, StoreError> {
        self.index
            .get_or_try_init(|| async {
                // This read takes every product: what changed before it is in it.
                let read = {
                    let mut unread = self.unread();
                    *unread = Unread::default();
                    self.reads.fetch_add(1, AtomicOrdering::SeqCst) + 1
                };
                let mut index = Index::default();
                index.install_all(store.all().await?, read, self.capacity);
                Ok::<_, StoreError>(RwLock::new(index))
            })
            .await
    }

    /// The page of `query` (`limit` + 1 products with their scores), searched for `terms` or
    /// a plain listing without them, or `None` when the index cannot answer: the catalog has
    /// outgrown it, or it may have missed changes.
    pub async fn list(
        &self,
        store: &ProductStore,
        query: &ListQuery,
        terms: Option<&SearchTerms>,
    ) -> Result<Option<Vec<(Product, i64)>>, StoreError> {
        if !self.in_step.load(AtomicOrdering::SeqCst) {
            return Ok(None);
        }
        let index = self.loaded(store).await?;
        self.refresh(store, index).await?;
        let index = index.read().unwrap_or_else(PoisonError::into_inner);
        if index.overflowed {
            return Ok(None);
        }
        let words = terms.map(SearchTerms::words).unwrap_or_default();
        let page = if words.is_empty() {
            index.listing(query)
        } else {
            None
        };
        Ok(Some(page.unwrap_or_else(|| index.search(query, &words))))
    }

    /// Reads the changed products again. A refresh numbers its read while it takes the ids,
    /// so the one that took a product last (after its last change) has the highest number,
    /// and an older read that finishes later does not overwrite it.
    async fn refresh(&self, store: &ProductStore, index: &RwLock<Index>) -> Result<(), StoreError> {
        let (unread, read) = {
            let mut unread = self.unread();
            if unread.products.is_empty() && !unread.all {
                return Ok(());
            }
            let read = self.reads.fetch_add(1, AtomicOrdering::SeqCst) + 1;
            (std::mem::take(&mut *unread), read)
        };
        let products = if unread.all {
            store.all().await
        } else {
            let ids: Vec<Uuid> = unread.products.iter().copied().collect();
            store.find_many(&ids).await
        };
        let products = match products {
            Ok(products) => products,
            Err(error) => {
                let mut again = self.unread();
                again.products.extend(unread.products);
                again.all |= unread.all;
                return Err(error);
            }
        };
        index
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .install_all(products, read, self.capacity);
        Ok(())
    }

    fn unread(&self) -> MutexGuard<'_, Unread> {
        // A set of ids and a flag are whole whatever panicked while holding them.
        self.changed.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Default)]
struct Index {
    docs: Vec<Doc>,
    slots: HashMap<Uuid, u32>,
    /// The products whose name or description holds each trigram.
    postings: HashMap<Trigram, HashSet<u32>>,
    overflowed: bool,
    /// Every product's slot in the order of each sort a listing without search words can
    /// have, so that its page is a walk from the cursor rather than a sort of the catalog.
    /// Put in order again after the installs that moved a product in one of them.
    sorted: Vec<(Sort, Vec<u32>)>,
    sorted_stale: bool,
}

/// The sorts kept in order. Relevance without search words (every score 0) is rare: it
/// sorts the catalog for each page.
const KEPT_SORTS: [Sort; 4] = [Sort::Price, Sort::PriceDesc, Sort::Name, Sort::NewestFirst];

struct Doc {
    product: Product,
    /// Lower-cased, as the database keeps them for search.
    name: String,
    description: String,
    /// The number of the read it came from.
    read: u64,
}

/// The trigrams of a name and a description, each column on its own (as FTS5 indexes them).
fn trigrams_of(name: &str, description: &str) -> HashSet<Trigram> {
    let mut all = HashSet::new();
    for text in [name, description] {
        let chars: Vec<char> = text.chars().collect();
        all.extend(chars.windows(3).map(|w| [w[0], w[1], w[2]]));
    }
    all
}

fn trigram(text: &str) -> Option<Trigram> {
    let mut chars = text.chars();
    let t = [chars.next()?, chars.next()?, chars.next()?];
    chars.next().is_none().then_some(t)
}

impl Index {
    fn install_all(&mut self, products: Vec<Product>, read: u64, capacity: usize) {
        for product in products {
            self.install(product, read);
        }
        self.overflowed |= self.docs.len() > capacity;
        if self.sorted_stale && !self.overflowed {
            self.sort_all();
        }
    }

    fn sort_all(&mut self) {
        let docs = &self.docs;
        self.sorted = KEPT_SORTS
            .iter()
            .map(|&sort| {
                let mut slots: Vec<u32> = (0..docs.len() as u32).collect();
                slots.sort_by(|&a, &b| {
                    in_page_order((&docs[a as usize], 0), (&docs[b as usize], 0), sort)
                });
                (sort, slots)
            })
            .collect();
        self.sorted_stale = false;
    }

    fn install(&mut self, product: Product, read: u64) {
        let name = product.name.as_str().to_lowercase();
        let description = product.description.as_str().to_lowercase();
        let Some(&slot) = self.slots.get(&product.id) else {
            let slot = u32::try_from(self.docs.len()).unwrap_or(u32::MAX);
            for held in trigrams_of(&name, &description) {
                self.postings.entry(held).or_default().insert(slot);
            }
            self.slots.insert(product.id, slot);
            self.sorted_stale = true;
            self.docs.push(Doc {
                product,
                name,
                description,
                read,
            });
            return;
        };
        let doc = &mut self.docs[slot as usize];
        if doc.read > read {
            return;
        }
        // Stock and archiving are filters, checked during the walk: they move nothing.
        self.sorted_stale |= doc.name != name
            || doc.product.price != product.price
            || doc.product.created_at != product.created_at;
        if doc.name != name || doc.description != description {
            for gone in trigrams_of(&doc.name, &doc.description) {
                if let Some(posting) = self.postings.get_mut(&gone) {
                    posting.remove(&slot);
                }
            }
            for held in trigrams_of(&name, &description) {
                self.postings.entry(held).or_default().insert(slot);
            }
        }
        *doc = Doc {
            product,
            name,
            description,
            read,
        };
    }

    /// The products that may match every word: for each word long enough for trigrams, those
    /// holding one of its anchors (`SearchWord::anchors`); every product when no word is.
    fn candidates(&self, words: &[SearchWord]) -> Vec<u32> {
        let count = |t: &str| {
            trigram(t)
                .and_then(|t| self.postings.get(&t))
                .map_or(0, |posting| posting.len() as i64)
        };
        let mut per_word: Vec<HashSet<u32>> = words
            .iter()
            .filter(|word| word.indexable())
            .map(|word| {
                word.anchors(count)
                    .iter()
                    .filter_map(|t| trigram(t).and_then(|t| self.postings.get(&t)))
                    .flatten()
                    .copied()
                    .collect()
            })
            .collect();
        per_word.sort_by_key(HashSet::len);
        let Some((fewest, others)) = per_word.split_first() else {
            return (0..self.docs.len() as u32).collect();
        };
        fewest
            .iter()
            .copied()
            .filter(|slot| others.iter().all(|set| set.contains(slot)))
            .collect()
    }

    /// The page of a listing without search words, walked in the kept order of its sort from
    /// its cursor; `None` for a sort not kept in order, or while the order is stale.
    fn listing(&self, query: &ListQuery) -> Option<Vec<(Product, i64)>> {
        if self.sorted_stale {
            return None;
        }
        let (_, slots) = self.sorted.iter().find(|(sort, _)| *sort == query.sort)?;
        let doc = |slot: &u32| &self.docs[*slot as usize];
        let start = query.after.as_ref().map_or(0, |after| {
            slots.partition_point(|slot| !comes_after((doc(slot), 0), after, query.sort))
        });
        Some(
            slots[start..]
                .iter()
                .map(doc)
                .filter(|doc| passes_filters(&doc.product, query))
                .take(query.limit as usize + 1)
                .map(|doc| (doc.product.clone(), 0))
                .collect(),
        )
    }

    /// The page of `query` among the products every word matches (every product when there
    /// are no words), ranked by the sum of their scores.
    fn search(&self, query: &ListQuery, words: &[SearchWord]) -> Vec<(Product, i64)> {
        let mut hits: Vec<(&Doc, i64)> = self
            .candidates(words)
            .into_iter()
            .map(|slot| &self.docs[slot as usize])
            .filter(|doc| passes_filters(&doc.product, query))
            .filter_map(|doc| {
                words
                    .iter()
                    .map(|word| word.score(&doc.name, &doc.description))
                    .try_fold(0, |total, score| (score > 0).then_some(total + score))
                    .map(|total| (doc, total))
            })
            .collect();
        if let Some(after) = &query.after {
            hits.retain(|&hit| comes_after(hit, after, query.sort));
        }
        hits.sort_by(|&a, &b| in_page_order(a, b, query.sort));
        hits.into_iter()
            .take(query.limit as usize + 1)
            .map(|(doc, score)| (doc.product.clone(), score))
            .collect()
    }
}

/// The order of a page: the sort's key, then the id (as the SQL orders them).
fn in_page_order(a: (&Doc, i64), b: (&Doc, i64), sort: Sort) -> Ordering {
    let (a_key, b_key) = (sort_value(a.0, a.1, sort), sort_value(b.0, b.1, sort));
    in_sort_order(&a_key, &b_key, sort).then(a.0.product.id.cmp(&b.0.product.id))
}

/// Whether a product (with its score) belongs after the cursor `after` in the order of `sort`.
fn comes_after((doc, score): (&Doc, i64), after: &Cursor, sort: Sort) -> bool {
    match compare_to_cursor(&sort_value(doc, score, sort), &after.key, sort) {
        Ordering::Greater => true,
        Ordering::Equal => doc.product.id > after.id,
        Ordering::Less => false,
    }
}

fn passes_filters(product: &Product, query: &ListQuery) -> bool {
    let price = product.price.amount();
    product.archived_at.is_none()
        && query
            .category
            .as_ref()
            .is_none_or(|c| *c == product.category)
        && query.min_price.is_none_or(|min| price >= min)
        && query.max_price.is_none_or(|max| price <= max)
        && (!query.in_stock || product.available > 0)
}

/// A product's sort key, as the SQL orders it (names by their lower-cased bytes).
enum SortValue<'a> {
    Int(i64),
    Text(&'a str),
}

fn sort_value(doc: &Doc, score: i64, sort: Sort) -> SortValue<'_> {
    match sort {
        Sort::Relevance => SortValue::Int(score),
        Sort::Price | Sort::PriceDesc => SortValue::Int(doc.product.price.amount()),
        Sort::Name => SortValue::Text(&doc.name),
        Sort::NewestFirst => SortValue::Int(to_millis(doc.product.created_at)),
    }
}

fn descending(sort: Sort) -> bool {
    matches!(sort, Sort::Relevance | Sort::PriceDesc | Sort::NewestFirst)
}

/// `a` against `b` in the order of `sort` (`Less`: `a` comes first).
fn in_sort_order(a: &SortValue, b: &SortValue, sort: Sort) -> Ordering {
    let ascending = match (a, b) {
        (SortValue::Int(a), SortValue::Int(b)) => a.cmp(b),
        (SortValue::Text(a), SortValue::Text(b)) => a.cmp(b),
        (SortValue::Int(_), SortValue::Text(_)) => Ordering::Less,
        (SortValue::Text(_), SortValue::Int(_)) => Ordering::Greater,
    };
    if descending(sort) {
        ascending.reverse()
    } else {
        ascending
    }
}

/// Whether `key` comes after the cursor's key in the order of `sort` (`Greater`), with it
/// (`Equal`: the id decides) or before it. Cursors are checked to fit their sort.
fn compare_to_cursor(key: &SortValue, cursor: &CursorKey, sort: Sort) -> Ordering {
    let cursor = match cursor {
        CursorKey::Int(value) => SortValue::Int(*value),
        CursorKey::Text(value) => SortValue::Text(value),
    };
    in_sort_order(key, &cursor, sort)
}

#[cfg(test)]
mod tests {
    use platform::money::{Currency, Money};

    use super::*;
    use crate::domain::{Attributes, Category, Description, ProductName, Sku};

    fn product(id: Uuid, name: &str, amount: i64) -> Product {
        let now = platform::time::now();
        Product {
            id,
            sku: Sku::parse("SKU-1").expect("sku"),
            name: ProductName::parse(name).expect("name"),
            description: Description::default(),
            price: Money::new(amount, Currency::parse("EUR").expect("currency")),
            category: Category::parse("home").expect("category"),
            attributes: Attributes::default(),
            available: 1,
            version: 1,
            archived_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    fn query(q: &str) -> (ListQuery, SearchTerms) {
        let terms = SearchTerms::parse(q).expect("valid").expect("words");
        let query = ListQuery {
            search: Some(terms.clone()),
            category: None,
            min_price: None,
            max_price: None,
            in_stock: false,
            sort: Sort::Relevance,
            limit: 20,
            after: None,
        };
        (query, terms)
    }

    fn names(index: &Index, q: &str) -> Vec<String> {
        let (query, terms) = query(q);
        index
            .search(&query, &terms.words())
            .into_iter()
            .map(|(p, _)| p.name.as_str().to_owned())
            .collect()
    }

    #[test]
    fn a_newer_read_wins_and_a_renamed_product_leaves_its_old_words() {
        let id = Uuid::now_v7();
        let mut index = Index::default();
        index.install_all(vec![product(id, "Desk lamp", 100)], 1, 10);
        assert_eq!(names(&index, "lamp"), ["Desk lamp"]);
        index.install(product(id, "Floor light", 100), 3);
        index.install(product(id, "Desk lamp", 100), 2);
        assert!(
            names(&index, "lamp").is_empty(),
            "read 2 is older than read 3"
        );
        assert_eq!(names(&index, "light"), ["Floor light"]);
        let lam = index.postings.get(&['l', 'a', 'm']);
        assert!(
            lam.is_none_or(HashSet::is_empty),
            "the old name's trigrams are gone"
        );
    }

    #[test]
    fn past_its_capacity_the_index_stands_down() {
        let mut index = Index::default();
        let products = (0..3).map(|n| product(Uuid::now_v7(), "Lamp", n)).collect();
        index.install_all(products, 1, 3);
        assert!(!index.overflowed);
        index.install_all(vec![product(Uuid::now_v7(), "Lamp", 9)], 2, 3);
        assert!(index.overflowed);
    }

    /// Every page of a listing, walking its cursors as a client does.
    fn walk(
        index: &Index,
        mut query: ListQuery,
        page: impl Fn(&Index, &ListQuery) -> Vec<(Product, i64)>,
    ) -> Vec<Uuid> {
        let mut seen = Vec::new();
        loop {
            let mut rows = page(index, &query);
            let more = rows.len() > query.limit as usize;
            rows.truncate(query.limit as usize);
            seen.extend(rows.iter().map(|(p, _)| p.id));
            let Some((last, score)) = rows.last().filter(|_| more) else {
                return seen;
            };
            query.after = Some(Cursor {
                sort: query.sort,
                key: crate::store::sort_key(last, *score, query.sort),
                id: last.id,
            });
        }
    }

    #[test]
    fn a_listing_walked_in_kept_order_pages_as_the_full_sort_does() {
        // Few distinct prices, names and creation times: ties are what cursors get wrong.
        let mut seed = 7u64;
        let mut next = move |below: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % below
        };
        let mut products: Vec<Product> = (0..300)
            .map(|n| {
                let mut p = product(Uuid::now_v7(), ["Lamp", "desk", "Chair", "sofa"][n % 4], 0);
                p.price = Money::new(next(20) as i64 * 100, p.price.currency());
                p.available = next(3) as i64;
                p.created_at = platform::time::from_millis(1_000 * next(15) as i64);
                p.archived_at = (next(10) == 0).then_some(p.created_at);
                p.category =
                    Category::parse(["home", "office"][next(2) as usize]).expect("category");
                p
            })
            .collect();
        let mut index = Index::default();
        index.install_all(products.clone(), 1, 1_000);
        for round in 2..7 {
            for sort in KEPT_SORTS {
                for (category, in_stock, min_price) in [
                    (None, false, None),
                    (Some("office"), true, Some(500)),
                    (None, true, None),
                ] {
                    let query = ListQuery {
                        search: None,
                        category: category.map(|c| Category::parse(c).expect("category")),
                        min_price,
                        max_price: None,
                        in_stock,
                        sort,
                        limit: 7,
                        after: None,
                    };
                    let walked = walk(&index, query.clone(), |index, query| {
                        index.listing(query).expect("kept in order")
                    });
                    let sorted = walk(&index, query, |index, query| index.search(query, &[]));
                    assert!(walked.len() > 7, "{sort:?}: more than a page");
                    assert_eq!(walked, sorted, "{sort:?} in round {round}");
                }
            }
            // Each kind of change alone, since any one that moves a product puts all in order:
            // reprice some, rename some, restock some (a filter: nothing moves), add a few.
            for p in products.iter_mut().take(300) {
                let pick = next(3) == 0;
                match round {
                    2 if pick => p.price = Money::new(next(20) as i64 * 100, p.price.currency()),
                    3 if pick => {
                        let name = ["Table", "armchair"][next(2) as usize];
                        p.name = ProductName::parse(name).expect("name");
                    }
                    4 if pick => p.available = next(3) as i64,
                    _ => {}
                }
            }
            if round == 5 {
                products.extend((0..5).map(|_| product(Uuid::now_v7(), "Stool", 300)));
            }
            index.install_all(products.clone(), round, 1_000);
        }
    }

    #[test]
    fn trigrams_stay_within_a_column() {
        let held = trigrams_of("ab", "cd");
        assert!(held.is_empty(), "{held:?}");
        let held = trigrams_of("lamp", "");
        assert_eq!(held.len(), 2);
        assert!(held.contains(&['l', 'a', 'm']) && held.contains(&['a', 'm', 'p']));
    }

    #[test]
    fn only_three_characters_make_a_trigram() {
        assert_eq!(trigram("héa"), Some(['h', 'é', 'a']));
        assert_eq!(trigram("he"), None);
        assert_eq!(trigram("head"), None);
    }

    #[test]
    fn the_order_of_a_sort_and_its_cursor_agree() {
        let (low, high) = (SortValue::Int(1), SortValue::Int(2));
        assert_eq!(in_sort_order(&low, &high, Sort::Price), Ordering::Less);
        assert_eq!(
            in_sort_order(&low, &high, Sort::PriceDesc),
            Ordering::Greater
        );
        assert_eq!(
            compare_to_cursor(&low, &CursorKey::Int(2), Sort::Relevance),
            Ordering::Greater,
            "a lower score comes after a higher one"
        );
        assert_eq!(
            compare_to_cursor(
                &SortValue::Text("b"),
                &CursorKey::Text("a".into()),
                Sort::Name
            ),
            Ordering::Greater
        );
    }
}
