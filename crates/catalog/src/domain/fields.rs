/// A stock-keeping unit: 1 to 64 characters of `[A-Za-z0-9._-]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sku(String);

impl Sku {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.is_empty() || raw.len() > 64 {
            return Err("sku must be 1 to 64 characters");
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err("sku may contain only letters, digits, '.', '_' and '-'");
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Trimmed text of bounded length without control characters (newlines allowed where asked).
fn text(raw: &str, min: usize, max: usize, allow_newlines: bool) -> Result<String, ()> {
    let trimmed = raw.trim();
    let chars = trimmed.chars().count();
    let bad_control = trimmed
        .chars()
        .any(|c| c.is_control() && !(allow_newlines && matches!(c, '\n' | '\r' | '\t')));
    if chars < min || chars > max || bad_control {
        return Err(());
    }
    Ok(trimmed.to_owned())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductName(String);

impl ProductName {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        text(raw, 1, 200, false)
            .map(Self)
            .map_err(|()| "name must be 1 to 200 characters, without control characters")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Description(String);

impl Description {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        text(raw, 0, 5000, true)
            .map(Self)
            .map_err(|()| "description must be at most 5000 characters")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A category slug: 1 to 64 characters of lower-case letters, digits and '-'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category(String);

impl Category {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let ok = !raw.is_empty()
            && raw.len() <= 64
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err("category must be 1 to 64 characters of a-z, 0-9 and '-'");
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Free-form product attributes: a JSON object of at most 50 keys and 8 KiB.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Attributes(serde_json::Map<String, serde_json::Value>);

impl Attributes {
    pub fn parse(map: serde_json::Map<String, serde_json::Value>) -> Result<Self, &'static str> {
        if map.len() > 50 {
            return Err("attributes may have at most 50 keys");
        }
        if map.keys().any(|k| k.is_empty() || k.chars().count() > 64) {
            return Err("attribute names must be 1 to 64 characters");
        }
        if serde_json::to_string(&map).map_or(true, |json| json.len() > 8192) {
            return Err("attributes must be at most 8 KiB of JSON");
        }
        Ok(Self(map))
    }

    pub fn as_map(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.0
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "{}".into())
    }

    /// Stored attributes (written by us, so valid).
    pub fn from_stored(json: &str) -> Self {
        Self(serde_json::from_str(json).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skus() {
        assert!(Sku::parse("HD-100_b.2").is_ok());
        for bad in ["", "has space", "ünï", "a/b", &"x".repeat(65)] {
            assert!(Sku::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Sku::parse(&"x".repeat(64)).is_ok());
    }

    #[test]
    fn names_and_categories() {
        assert_eq!(
            ProductName::parse("  Headphones ").unwrap().as_str(),
            "Headphones"
        );
        assert!(ProductName::parse("").is_err());
        assert!(ProductName::parse(&"n".repeat(201)).is_err());
        assert!(ProductName::parse(&"n".repeat(200)).is_ok());
        assert!(Description::parse("two\nlines").is_ok());
        assert!(Category::parse("audio").is_ok());
        assert!(Category::parse("Audio").is_err());
    }

    proptest::proptest! {
        /// A sku is exactly what its rule says, taken as given.
        #[test]
        fn a_sku_is_1_to_64_of_its_characters(raw in "[A-Za-z0-9._-]{0,70}|\\PC{0,70}") {
            let allowed = (1..=64).contains(&raw.len())
                && raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            match Sku::parse(&raw) {
                Ok(sku) => {
                    proptest::prop_assert!(allowed);
                    proptest::prop_assert_eq!(sku.as_str(), raw.as_str());
                }
                Err(_) => proptest::prop_assert!(!allowed),
            }
        }

        /// A name keeps no surrounding space and no control character, and reads the same
        /// when parsed again.
        #[test]
        fn a_name_is_trimmed_bounded_and_stable(raw in "[ \t\n]{0,2}\\PC{0,210}[ \t\n]{0,2}") {
            if let Ok(name) = ProductName::parse(&raw) {
                let text = name.as_str();
                proptest::prop_assert_eq!(text, text.trim());
                proptest::prop_assert!((1..=200).contains(&text.chars().count()));
                proptest::prop_assert!(!text.chars().any(char::is_control));
                proptest::prop_assert_eq!(ProductName::parse(text), Ok(name.clone()));
            }
        }
    }

    #[test]
    fn attributes_are_bounded() {
        let many: serde_json::Map<_, _> = (0..51)
            .map(|i| (format!("k{i}"), serde_json::json!(i)))
            .collect();
        assert!(Attributes::parse(many).is_err());
        let big: serde_json::Map<_, _> = [("k".to_owned(), serde_json::json!("x".repeat(9000)))]
            .into_iter()
            .collect();
        assert!(Attributes::parse(big).is_err());
    }
}
