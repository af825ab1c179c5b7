//! Normalisation of identity keys, so that `Jane@X.com ` and `jane@x.com` are one vertex.

use std::borrow::Cow;

use serde::Deserialize;

/// How a vertex label's key is normalised before its id is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Normaliser {
    /// Surrounding whitespace removed.
    Trim,
    /// Trimmed and lower-cased (emails, user names, domains, uuids).
    Lower,
    /// Trimmed and upper-cased (device ids).
    Upper,
    /// Digits only; an extension (after `x` or `ext`) dropped; a leading US country code `1`
    /// dropped from an 11-digit number.
    Phone,
}

impl Normaliser {
    /// The normalised key; empty when nothing identifying is left.
    pub fn apply<'a>(self, value: &'a str) -> Cow<'a, str> {
        let trimmed = value.trim();
        match self {
            Normaliser::Trim => Cow::Borrowed(trimmed),
            Normaliser::Lower
                if trimmed.bytes().any(|b| b.is_ascii_uppercase()) || !trimmed.is_ascii() =>
            {
                Cow::Owned(trimmed.to_lowercase())
            }
            Normaliser::Lower => Cow::Borrowed(trimmed),
            Normaliser::Upper
                if trimmed.bytes().any(|b| b.is_ascii_lowercase()) || !trimmed.is_ascii() =>
            {
                Cow::Owned(trimmed.to_uppercase())
            }
            Normaliser::Upper => Cow::Borrowed(trimmed),
            Normaliser::Phone => {
                let lower = trimmed.to_ascii_lowercase();
                let number = match lower.find("ext").or_else(|| lower.find('x')) {
                    Some(at) => &lower[..at],
                    None => &lower[..],
                };
                let digits: String = number.chars().filter(char::is_ascii_digit).collect();
                let digits = match digits.strip_prefix('1') {
                    Some(rest) if digits.len() == 11 => rest.to_owned(),
                    _ => digits,
                };
                // A leading international prefix 001 (as some CRMs export US numbers).
                let digits = match digits.strip_prefix("001") {
                    Some(rest) if digits.len() == 13 => rest.to_owned(),
                    _ => digits,
                };
                Cow::Owned(digits)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Normaliser::*;

    #[test]
    fn keys_normalise_as_documented() {
        assert_eq!(Lower.apply("  Jane@X.com "), "jane@x.com");
        assert_eq!(Lower.apply("jane@x.com"), "jane@x.com");
        assert_eq!(Upper.apply(" 8584aa0c97b4945e"), "8584AA0C97B4945E");
        assert_eq!(Trim.apply("\t051-79-5922 "), "051-79-5922");
        for phone in [
            "(753) 461-7712 x161",
            "753.461.7712",
            "1-753-461-7712 x6249",
            "+1-753-461-7712",
            "001-753-461-7712x12",
            "7534617712",
        ] {
            assert_eq!(Phone.apply(phone), "7534617712", "{phone}");
        }
        assert_eq!(Phone.apply("n/a"), "");
        assert_eq!(Lower.apply("   "), "");
    }
}
