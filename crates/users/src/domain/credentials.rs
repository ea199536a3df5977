use secrecy::{ExposeSecret, SecretString};

/// An email address, syntax-checked and normalised to lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub const MAX_LEN: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("email is required");
        }
        if trimmed.len() > Self::MAX_LEN {
            return Err("email is longer than 254 characters");
        }
        let parsed: email_address::EmailAddress = trimmed
            .parse()
            .map_err(|_| "email is not a valid address")?;
        // Display names ("Alice <a@x>") parse too; we want the bare address, with a dot in
        // the domain so typos like `user@localhost` are caught.
        if parsed.email() != trimmed || !parsed.domain().contains('.') {
            return Err("email is not a valid address");
        }
        Ok(Self(trimmed.to_lowercase()))
    }

    /// An address already stored (and so already validated).
    pub fn from_stored(value: String) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password in the clear, as typed: 12 to 128 characters. Never logged.
#[derive(Debug, Clone)]
pub struct Password(SecretString);

impl Password {
    pub const MIN_CHARS: usize = 12;
    pub const MAX_CHARS: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let chars = raw.chars().count();
        if chars < Self::MIN_CHARS {
            return Err("password must be at least 12 characters");
        }
        if chars > Self::MAX_CHARS {
            return Err("password must be at most 128 characters");
        }
        Ok(Self(SecretString::from(raw.to_owned())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

/// A person's display name: 1 to 100 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("name is required");
        }
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err("name must be at most 100 characters");
        }
        if trimmed.chars().any(char::is_control) {
            return Err("name must not contain control characters");
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn from_stored(value: String) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse(" Alice@Example.COM ").unwrap().as_str(),
            "alice@example.com"
        );
        for bad in [
            "",
            "alice",
            "alice@",
            "@example.com",
            "a b@example.com",
            "Alice <a@example.com>",
            "a@localhost",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(250))).is_err());
    }

    proptest::proptest! {
        /// Whatever is typed, an accepted address is lower case, bounded, one `@` away from
        /// a domain with a dot, and the same when parsed again.
        #[test]
        fn an_accepted_email_is_normalised_and_stable(
            raw in "[ ]{0,2}[A-Za-z0-9._%+-]{1,20}@[A-Za-z0-9-]{1,20}(\\.[A-Za-z]{1,6}){0,2}[ ]{0,2}|\\PC{0,40}",
        ) {
            if let Ok(email) = Email::parse(&raw) {
                let text = email.as_str();
                proptest::prop_assert_eq!(text, text.to_lowercase());
                proptest::prop_assert!(text.len() <= Email::MAX_LEN);
                let (_, domain) = text.rsplit_once('@').expect("an @");
                proptest::prop_assert!(domain.contains('.'));
                proptest::prop_assert_eq!(Email::parse(text), Ok(email.clone()));
            }
        }

        /// A display name is accepted exactly when, trimmed, it is 1 to 100 characters with no
        /// control character; what is kept is the trimmed text, and parsing it again keeps it.
        #[test]
        fn a_display_name_is_trimmed_bounded_and_stable(raw in "[ \t]{0,2}\\PC{0,110}[\u{0}\n]?[ ]{0,2}") {
            let trimmed = raw.trim();
            let acceptable = !trimmed.is_empty()
                && trimmed.chars().count() <= DisplayName::MAX_CHARS
                && !trimmed.chars().any(char::is_control);
            match DisplayName::parse(&raw) {
                Ok(name) => {
                    proptest::prop_assert!(acceptable);
                    proptest::prop_assert_eq!(name.as_str(), trimmed);
                    proptest::prop_assert_eq!(DisplayName::parse(name.as_str()), Ok(name.clone()));
                }
                Err(_) => proptest::prop_assert!(!acceptable),
            }
        }
    }

    #[test]
    fn password_length_counts_characters_not_bytes() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse("ünïcödé-pässwörd").is_ok());
        assert!(Password::parse(&"x".repeat(11)).is_err());
        assert!(Password::parse(&"x".repeat(12)).is_ok());
        assert!(Password::parse(&"x".repeat(128)).is_ok());
        assert!(Password::parse(&"x".repeat(129)).is_err());
    }

    #[test]
    fn passwords_do_not_show_in_debug() {
        let password = Password::parse("correct horse battery staple").unwrap();
        assert!(!format!("{password:?}").contains("horse"));
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(DisplayName::parse("  Ada  ").unwrap().as_str(), "Ada");
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse("a\u{0}b").is_err());
        assert!(DisplayName::parse(&"n".repeat(101)).is_err());
    }
}
