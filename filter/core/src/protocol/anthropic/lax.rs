//! A request field read without failing the parse on its JSON type.
//!
//! The request translators answer every bad input with the exact field at
//! fault (`messages[3].content[0].text must be a string`). A derived struct
//! with strict field types cannot: serde fails the whole parse naming the
//! type it expected, not the field. So the request wire structs are derived
//! and borrowed down to the fields a translator checks, and those fields are
//! a [`Lax`]: the JSON kind the client sent, with the scalar, the object
//! read as its own wire struct, or the array read as a list, for the
//! translator to check and name.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Unexpected, Visitor};
use serde_json::Number;
use serde_json::value::RawValue;

use super::TranslateError;

/// Reads a client's request body (`what` says which protocol) as the wire
/// struct `T`, with the errors both request translators give for a body that
/// is not JSON, or not an object.
pub(super) fn read_request<'a, T: Deserialize<'a>>(
    body: &'a [u8],
    what: &str,
) -> Result<T, TranslateError> {
    let req = serde_json::from_slice::<Lax<T>>(body).map_err(|e| {
        // Data errors are a duplicate field: the JSON itself is fine.
        let why = if e.is_data() {
            "invalid request body"
        } else {
            "request body is not valid JSON"
        };
        TranslateError(format!("{why}: {e}"))
    })?;
    match req {
        Lax::Object(req) => Ok(req),
        _ => Err(TranslateError(format!(
            "request body must be a JSON object: {what}"
        ))),
    }
}

/// One field as the client sent it. An object is read as `M` and an array
/// as `S`; both default to [`Skip`], for fields where one is just the wrong
/// type.
#[derive(Debug, Default)]
pub(super) enum Lax<'a, M = Skip, S = Skip> {
    #[default]
    Absent,
    Null,
    Bool(bool),
    Number(Number),
    Str(Cow<'a, str>),
    Object(M),
    Array(S),
}

/// A field that is a list of `T` objects: each element is itself a [`Lax`],
/// so an element that is not an object is reported by its index.
pub(super) type List<'a, T = Skip> = Lax<'a, Skip, Vec<Lax<'a, T>>>;

impl<'a, T> Lax<'a, Skip, Vec<Lax<'a, T>>> {
    /// An array whose every element is a string, as those strings; None for
    /// anything else (the caller names the field).
    pub(super) fn strings(&self) -> Option<Vec<&str>> {
        match self {
            Lax::Array(items) => items.iter().map(Lax::as_str).collect(),
            _ => None,
        }
    }
}

impl<'a, M, S> Lax<'a, M, S> {
    /// Absent or `null`, which every translated field treats alike.
    pub(super) fn is_none(&self) -> bool {
        matches!(self, Lax::Absent | Lax::Null)
    }

    pub(super) fn as_str(&self) -> Option<&str> {
        match self {
            Lax::Str(s) => Some(s),
            _ => None,
        }
    }

    pub(super) fn as_bool(&self) -> Option<bool> {
        match self {
            Lax::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// A non-negative integer that fits in a `u64`.
    pub(super) fn as_u64(&self) -> Option<u64> {
        match self {
            Lax::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    pub(super) fn as_f64(&self) -> Option<f64> {
        match self {
            Lax::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    pub(super) fn object(&self) -> Option<&M> {
        match self {
            Lax::Object(m) => Some(m),
            _ => None,
        }
    }
}

impl<'de: 'a, 'a, M: Deserialize<'de>, S: Deserialize<'de>> Deserialize<'de> for Lax<'a, M, S> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LaxVisitor(PhantomData))
    }
}

struct LaxVisitor<'a, M, S>(PhantomData<(&'a (), M, S)>);

impl<'de: 'a, 'a, M: Deserialize<'de>, S: Deserialize<'de>> Visitor<'de> for LaxVisitor<'a, M, S> {
    type Value = Lax<'a, M, S>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Lax::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Lax::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Lax::Bool(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Lax::Number(v.into()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Lax::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        // serde_json only reads finite numbers; this is for other callers.
        Number::from_f64(v)
            .map(Lax::Number)
            .ok_or_else(|| E::invalid_value(Unexpected::Float(v), &self))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Lax::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Lax::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Lax::Str(Cow::Owned(v)))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        M::deserialize(MapAccessDeserializer::new(map)).map(Lax::Object)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        S::deserialize(SeqAccessDeserializer::new(seq)).map(Lax::Array)
    }
}

/// Whether a raw JSON value (which serde_json stores without surrounding
/// whitespace) is an object.
pub(super) fn is_object(raw: &RawValue) -> bool {
    raw.get().starts_with('{')
}

/// For a raw field whose `null` is kept rather than read as absent, as
/// serde reads an `Option`: `#[serde(deserialize_with = "raw_keeping_null")]`.
pub(super) fn raw_keeping_null<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// A value passed over. Unlike serde's `IgnoredAny`, which serde_json skips
/// with no depth limit, it goes through `deserialize_any` and so keeps
/// serde_json's nesting limit: a body nested thousands deep fails as bad
/// JSON, as it did when these bodies were parsed into a `Value`.
#[derive(Debug, Default)]
pub(super) struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_none<E: de::Error>(self) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Skip)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Default)]
    #[serde(default, bound(deserialize = "'de: 'a"))]
    struct Wire<'a> {
        a: Lax<'a>,
        list: List<'a, Wire<'a>>,
    }

    fn read(json: &str) -> Wire<'_> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn every_json_kind_is_kept_for_the_translator_to_judge() {
        assert!(matches!(read("{}").a, Lax::Absent));
        assert!(matches!(read(r#"{"a":null}"#).a, Lax::Null));
        assert_eq!(read(r#"{"a":true}"#).a.as_bool(), Some(true));
        assert_eq!(read(r#"{"a":7}"#).a.as_u64(), Some(7));
        assert_eq!(read(r#"{"a":-7}"#).a.as_u64(), None);
        assert_eq!(read(r#"{"a":-7}"#).a.as_f64(), Some(-7.0));
        assert_eq!(read(r#"{"a":7.5}"#).a.as_u64(), None);
        assert!(matches!(read(r#"{"a":{"x":[1]}}"#).a, Lax::Object(Skip)));
        assert!(matches!(read(r#"{"a":[1,{}]}"#).a, Lax::Array(Skip)));
    }

    #[test]
    fn strings_borrow_from_the_body_unless_escaped() {
        assert!(matches!(
            read(r#"{"a":"plain"}"#).a,
            Lax::Str(Cow::Borrowed("plain"))
        ));
        let escaped = read(r#"{"a":"tab\there"}"#);
        assert!(matches!(&escaped.a, Lax::Str(Cow::Owned(s)) if s == "tab\there"));
    }

    #[test]
    fn list_elements_are_read_one_by_one() {
        let w = read(r#"{"list":[{"a":"x"},5,null]}"#);
        let Lax::Array(items) = w.list else {
            panic!("not a list")
        };
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].object().and_then(|o| o.a.as_str()), Some("x"));
        assert!(matches!(items[1], Lax::Number(_)));
        assert!(matches!(items[2], Lax::Null));
        assert!(matches!(read(r#"{"list":"text"}"#).list, Lax::Str(_)));
    }

    #[test]
    fn skipped_values_keep_the_nesting_limit() {
        let deep = format!(r#"{{"a":{}{}}}"#, "[".repeat(1000), "]".repeat(1000));
        let e = serde_json::from_str::<Wire>(&deep).err().unwrap();
        assert!(e.to_string().contains("recursion limit"), "{e}");
    }
}
