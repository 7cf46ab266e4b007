//! Customer details from `CustomerInfo` (table) or `UserDetails` (HTTPS
//! endpoint). Keys match in any case at every level because Microsoft's own
//! examples disagree (`UserDetails` / `userDetails`, `FirstName` / `firstname`).

use serde_json::{Map, Value};

use crate::json_text;

/// Customer details from `CustomerInfo` / `UserDetails`. Blank values are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Customer {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub country: Option<String>,
    pub company: Option<String>,
    pub title: Option<String>,
}

/// Microsoft's key names, in Microsoft's order.
pub(crate) const KEYS: [&str; 7] = [
    "FirstName",
    "LastName",
    "Email",
    "Phone",
    "Country",
    "Company",
    "Title",
];

impl Customer {
    /// "Jane Doe"; for names written in Chinese, Japanese or Korean script the
    /// family name comes first without a space ("王小明").
    pub fn full_name(&self) -> Option<String> {
        match (&self.first_name, &self.last_name) {
            (Some(first), Some(last)) if is_cjk(first) && is_cjk(last) => {
                Some(format!("{last}{first}"))
            }
            (Some(first), Some(last)) => Some(format!("{first} {last}")),
            (Some(one), None) | (None, Some(one)) => Some(one.clone()),
            (None, None) => None,
        }
    }

    /// The part after the last `@` of the email address, if there is one.
    pub fn email_domain(&self) -> Option<&str> {
        let email = self.email.as_deref()?;
        let (_, domain) = email.rsplit_once('@')?;
        let domain = domain.trim().trim_end_matches(['>', '.']);
        (!domain.is_empty()).then_some(domain)
    }

    /// Every field that is set, in Microsoft's order.
    pub fn fields(&self) -> impl Iterator<Item = (&'static str, &str)> {
        KEYS.into_iter()
            .zip(self.slots())
            .filter_map(|(key, value)| value.as_deref().map(|v| (key, v)))
    }

    fn slots(&self) -> [&Option<String>; 7] {
        [
            &self.first_name,
            &self.last_name,
            &self.email,
            &self.phone,
            &self.country,
            &self.company,
            &self.title,
        ]
    }

    /// Reads a JSON object of details, ignoring keys it does not know.
    pub(crate) fn from_object(object: &Map<String, Value>) -> Customer {
        let get = |key: &str| get_ci(object, key).and_then(value_text);
        Customer {
            first_name: get("FirstName"),
            last_name: get("LastName"),
            email: get("Email"),
            phone: get("Phone"),
            country: get("Country"),
            company: get("Company"),
            title: get("Title"),
        }
    }

    /// Parses `CustomerInfo`. `Err` carries a warning (never personal data:
    /// serde_json's syntax errors name only line and column). Half an emoji
    /// in it (a lone surrogate escape, as a UTF-16 writer leaves) reads as
    /// U+FFFD.
    pub(crate) fn parse_info(text: &str) -> Result<Customer, String> {
        let value: Value = serde_json::from_str(&json_text::repair(text))
            .map_err(|e| format!("CustomerInfo is not valid JSON ({e})"))?;
        // Some writers encode the object twice, as a JSON string.
        let value = match value {
            Value::String(inner) => serde_json::from_str(&json_text::repair(&inner))
                .map_err(|_| "CustomerInfo is a JSON string, not an object".to_owned())?,
            other => other,
        };
        let object = value
            .as_object()
            .ok_or_else(|| "CustomerInfo is JSON but not an object".to_owned())?;
        // The HTTPS endpoint nests details under UserDetails; accept that here too.
        let details = match get_ci(object, "UserDetails") {
            Some(Value::Object(inner)) => inner,
            _ => object,
        };
        Ok(Customer::from_object(details))
    }
}

/// The value under `key`, matching case-insensitively; an exact match wins.
pub(crate) fn get_ci<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).or_else(|| {
        object
            .iter()
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// A JSON value as trimmed text: numbers and booleans as written, `null` and
/// blanks as `None`, nested values as compact JSON.
pub(crate) fn value_text(value: &Value) -> Option<String> {
    let text = match value {
        Value::Null => return None,
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Array(_) | Value::Object(_) => value.to_string(),
    };
    (!text.is_empty()).then_some(text)
}

fn is_cjk(text: &str) -> bool {
    text.chars().all(|c| {
        matches!(c as u32,
            0x1100..=0x11FF   // Hangul Jamo
            | 0x3040..=0x30FF // Hiragana, Katakana
            | 0x3400..=0x4DBF // CJK Extension A
            | 0x4E00..=0x9FFF // CJK Unified Ideographs
            | 0xAC00..=0xD7AF // Hangul syllables
            | 0xF900..=0xFAFF // CJK Compatibility Ideographs
            | 0x20000..=0x2FA1F)
    })
}
