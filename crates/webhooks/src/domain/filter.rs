//! The event types an endpoint subscribes to: exact type names, or a prefix ending in `*`
//! (`commercex.order.*`; `*` alone is every type).

use serde::{Deserialize, Serialize};

/// The longest pattern taken; event types are far shorter.
const MAX_PATTERN: usize = 120;
/// The most patterns one endpoint holds.
pub const MAX_PATTERNS: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("at least one event type is needed")]
    Empty,
    #[error("at most {MAX_PATTERNS} event types are taken")]
    TooMany,
    #[error(
        "{0:?} is not an event type pattern: lower-case letters, digits, '.', '_' and '-', \
         optionally ending in '*'"
    )]
    Malformed(String),
    #[error("{0:?} matches no event type CommerceX publishes")]
    MatchesNothing(String),
}

/// One pattern: an exact type, or a prefix when it ends in `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern(String);

impl Pattern {
    fn parse(raw: &str) -> Result<Self, FilterError> {
        let body = raw.strip_suffix('*').unwrap_or(raw);
        let well_formed = raw.len() <= MAX_PATTERN
            && !raw.is_empty()
            && body.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
            });
        if !well_formed {
            return Err(FilterError::Malformed(raw.to_owned()));
        }
        Ok(Self(raw.to_owned()))
    }

    fn matches(&self, event_type: &str) -> bool {
        match self.0.strip_suffix('*') {
            Some(prefix) => event_type.starts_with(prefix),
            None => self.0 == event_type,
        }
    }
}

/// What an endpoint wants: an event matching any of its patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTypeFilter(Vec<Pattern>);

impl EventTypeFilter {
    /// Patterns from an integrator: each must be well formed and match at least one of
    /// `known` (the published types), so that a typo is an error now, not silence later.
    pub fn parse(patterns: &[String], known: &[&str]) -> Result<Self, FilterError> {
        if patterns.is_empty() {
            return Err(FilterError::Empty);
        }
        if patterns.len() > MAX_PATTERNS {
            return Err(FilterError::TooMany);
        }
        let mut parsed = Vec::with_capacity(patterns.len());
        for raw in patterns {
            let pattern = Pattern::parse(raw)?;
            if !known.iter().any(|t| pattern.matches(t)) {
                return Err(FilterError::MatchesNothing(raw.clone()));
            }
            if !parsed.contains(&pattern) {
                parsed.push(pattern);
            }
        }
        Ok(Self(parsed))
    }

    /// Patterns as stored: trusted, read back without the checks against the known types (a
    /// type retired since still reads).
    pub fn stored(patterns: Vec<String>) -> Result<Self, FilterError> {
        patterns
            .iter()
            .map(|raw| Pattern::parse(raw))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn matches(&self, event_type: &str) -> bool {
        self.0.iter().any(|p| p.matches(event_type))
    }

    pub fn patterns(&self) -> Vec<String> {
        self.0.iter().map(|p| p.0.clone()).collect()
    }
}

impl Serialize for EventTypeFilter {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.patterns().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for EventTypeFilter {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let patterns = Vec::<String>::deserialize(deserializer)?;
        Self::stored(patterns).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[&str] = &[
        "commercex.order.placed.v1",
        "commercex.order.confirmed.v1",
        "commercex.payment.captured.v1",
    ];

    fn filter(patterns: &[&str]) -> Result<EventTypeFilter, FilterError> {
        let patterns: Vec<String> = patterns.iter().map(|p| (*p).to_owned()).collect();
        EventTypeFilter::parse(&patterns, KNOWN)
    }

    #[test]
    fn a_wildcard_takes_every_type_under_its_prefix_and_no_other() {
        let orders = filter(&["commercex.order.*"]).expect("valid");
        assert!(orders.matches("commercex.order.placed.v1"));
        assert!(orders.matches("commercex.order.cancelled.v1"));
        assert!(!orders.matches("commercex.payment.captured.v1"));
        assert!(!orders.matches("commercex.orders"));
    }

    #[test]
    fn an_exact_type_takes_that_type_only() {
        let placed = filter(&["commercex.order.placed.v1"]).expect("valid");
        assert!(placed.matches("commercex.order.placed.v1"));
        assert!(!placed.matches("commercex.order.placed.v2"));
        assert!(
            filter(&["*"])
                .expect("valid")
                .matches("commercex.payment.captured.v1")
        );
    }

    #[test]
    fn a_pattern_that_matches_nothing_published_is_refused() {
        assert_eq!(
            filter(&["commercex.ordr.*"]),
            Err(FilterError::MatchesNothing("commercex.ordr.*".into()))
        );
        assert_eq!(filter(&[]), Err(FilterError::Empty));
    }

    #[test]
    fn stars_inside_a_pattern_and_odd_characters_are_refused() {
        for bad in [
            "commercex.*.placed.v1",
            "Commercex.order.*",
            "a b",
            "",
            "**",
        ] {
            assert!(
                matches!(filter(&[bad]), Err(FilterError::Malformed(_))),
                "{bad:?} was taken"
            );
        }
    }

    #[test]
    fn repeated_patterns_are_kept_once() {
        let twice = filter(&["commercex.order.*", "commercex.order.*"]).expect("valid");
        assert_eq!(twice.patterns(), vec!["commercex.order.*".to_owned()]);
    }
}
