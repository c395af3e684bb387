//! The JSON tree the decoders read: like [`serde_json::Value`], but its strings and keys
//! borrow from the event body wherever the text has no escapes, and an object is its
//! entries in a `Vec` rather than a `BTreeMap` of owned keys.
//!
//! Parsing into `serde_json::Value` allocated a `String` for every key and string and a
//! B-tree for every object of a payload, only for the decoders to read a few dozen fields
//! and drop the rest: about half of revline's decode time. This tree makes one allocation
//! per object and array. It is still parsed by `serde_json` (the same grammar, errors and
//! recursion limit), and numbers are still [`serde_json::Number`], so every field reads as
//! it did.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Serialize, Serializer};
use serde_json::Number;

/// A JSON value borrowing from the text it was parsed from.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Value<'a>>),
    /// Entries in the order of the text; a repeated key's last value wins, as in
    /// `serde_json::Value`.
    Object(Vec<(Cow<'a, str>, Value<'a>)>),
}

impl<'a> Value<'a> {
    /// The value of `key` in an object; `None` for a missing key or a value that is not an
    /// object.
    pub(super) fn get(&self, key: &str) -> Option<&Value<'a>> {
        match self {
            Value::Object(entries) => entries
                .iter()
                .rev()
                .find(|(k, _)| k.as_ref() == key)
                .map(|(_, v)| v),
            _ => None,
        }
    }

    pub(super) fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub(super) fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Number(n) => n.as_i64(),
            _ => None,
        }
    }

    pub(super) fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub(super) fn as_array(&self) -> Option<&Vec<Value<'a>>> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    pub(super) fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub(super) fn is_object(&self) -> bool {
        matches!(self, Value::Object(_))
    }

    pub(super) fn is_array(&self) -> bool {
        matches!(self, Value::Array(_))
    }
}

/// The value as JSON text (for error messages that quote it).
impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = serde_json::to_string(self).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

impl Serialize for Value<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Number(n) => n.serialize(serializer),
            Value::String(s) => serializer.serialize_str(s),
            Value::Array(items) => serializer.collect_seq(items),
            Value::Object(entries) => {
                serializer.collect_map(entries.iter().map(|(k, v)| (k.as_ref(), v)))
            }
        }
    }
}

impl<'de> Deserialize<'de> for Value<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value<'de>, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value<'de>, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value<'de>, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value<'de>, E> {
        // As serde_json::Value: a non-finite float (which JSON cannot write) is null.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Value<'de>, E> {
        Ok(Value::String(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value<'de>, E> {
        Ok(Value::String(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Value<'de>, E> {
        Ok(Value::String(Cow::Owned(v)))
    }

    fn visit_unit<E>(self) -> Result<Value<'de>, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value<'de>, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value<'de>, D::Error> {
        Value::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value<'de>, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(key) = map.next_key_seed(Key)? {
            entries.push((key, map.next_value()?));
        }
        Ok(Value::Object(entries))
    }
}

/// An object key, borrowed when its text has no escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v))
    }
}

#[cfg(test)]
mod tests {
    use super::Value;

    /// Every kind of value reads as serde_json's own tree reads it, escapes and duplicate
    /// keys included.
    #[test]
    fn reads_like_serde_json_value() {
        let text = r#"{"a": 1, "b": -2, "c": 18446744073709551615, "d": 1.5, "e": "x\"y",
            "f": "plain", "g": null, "h": [true, false, {"i": []}], "a": 3, "k\u00e9": "v"}"#;
        let ours: Value<'_> = serde_json::from_str(text).unwrap();
        let theirs: serde_json::Value = serde_json::from_str(text).unwrap();
        for key in ["a", "b", "c", "d", "e", "f", "g", "h", "ké", "missing"] {
            let (o, t) = (ours.get(key), theirs.get(key));
            assert_eq!(o.is_some(), t.is_some(), "{key}");
            let (Some(o), Some(t)) = (o, t) else { continue };
            assert_eq!(o.as_i64(), t.as_i64(), "{key}");
            assert_eq!(o.as_str(), t.as_str(), "{key}");
            assert_eq!(o.as_bool(), t.as_bool(), "{key}");
            assert_eq!(o.is_null(), t.is_null(), "{key}");
            assert_eq!(o.is_array(), t.is_array(), "{key}");
            if let (Value::Number(o), Some(t)) = (o, t.as_number()) {
                assert_eq!(o.to_string(), t.to_string(), "{key}");
            }
        }
        assert_eq!(
            ours.get("a").and_then(Value::as_i64),
            Some(3),
            "the last wins"
        );
        let array = ours.get("h").unwrap();
        assert_eq!(array.to_string(), theirs["h"].to_string());
        assert_eq!(array.as_array().map(Vec::len), Some(3));
    }

    #[test]
    fn strings_without_escapes_borrow_from_the_text() {
        let text = r#"{"plain": "abc", "escaped": "a\nb"}"#;
        let v: Value<'_> = serde_json::from_str(text).unwrap();
        let Value::Object(entries) = &v else {
            panic!("an object")
        };
        assert!(entries
            .iter()
            .all(|(k, _)| matches!(k, std::borrow::Cow::Borrowed(_))));
        assert!(matches!(
            v.get("plain"),
            Some(Value::String(std::borrow::Cow::Borrowed("abc")))
        ));
        assert_eq!(v.get("escaped").and_then(Value::as_str), Some("a\nb"));
    }

    #[test]
    fn bad_json_and_deep_nesting_are_errors_not_panics() {
        assert!(serde_json::from_str::<Value<'_>>(r#"{"a": }"#).is_err());
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(serde_json::from_str::<Value<'_>>(&deep).is_err());
    }
}
