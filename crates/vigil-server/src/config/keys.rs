//! The keys the configuration accepts, and the type of each, read from the `Deserialize`
//! impls of the config structs themselves.
//!
//! Why not the serialized defaults: an `Option` field that defaults to `None` (`syslog.tcp`,
//! `syslog.tls_cert`, ...) is absent from them, so the environment layer refused keys the
//! file accepts. Why not a hand-kept list: it drifts from the structs. Instead a
//! [`Deserializer`] that holds no data walks a type: every struct hands it its field names
//! (the same list `deny_unknown_fields` checks the file against) and every leaf asks for the
//! type it wants, which is recorded.

use std::collections::BTreeMap;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::forward_to_deserialize_any;

/// The type an environment string is parsed as.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Kind {
    String,
    Integer,
    Float,
    Boolean,
    /// Comma-separated elements of this kind.
    Array(Box<Kind>),
    /// An array of tables (`[[webhooks.endpoints]]`): set in the file only.
    Tables,
}

/// One settable key.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Key {
    pub kind: Kind,
    /// Absent by default (`Option`): an empty value unsets it.
    pub optional: bool,
}

/// Every key `T` accepts, as dotted paths (`syslog.tcp`), with its type.
pub(super) fn describe<'de, T: de::Deserialize<'de>>() -> Result<BTreeMap<String, Key>, String> {
    let mut keys = BTreeMap::new();
    T::deserialize(Tracer {
        keys: &mut keys,
        path: String::new(),
        optional: false,
    })
    .map_err(|e| e.to_string())?;
    Ok(keys)
}

/// Element paths of arrays are recorded under this suffix, then folded into the array's key.
const ELEMENT: &str = "[]";

struct Tracer<'a> {
    keys: &'a mut BTreeMap<String, Key>,
    path: String,
    optional: bool,
}

impl Tracer<'_> {
    fn leaf(self, kind: Kind) {
        self.keys.insert(
            self.path,
            Key {
                kind,
                optional: self.optional,
            },
        );
    }
}

type Error = de::value::Error;

impl<'de> Deserializer<'de> for Tracer<'_> {
    type Error = Error;

    /// Self-describing input (untagged enums, `serde_json::Value`, maps with open keys) has
    /// no fixed set of keys to offer; a config field of such a type must be described here
    /// before it can be set from the environment, and the test over all keys says so.
    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(de::Error::custom(format!(
            "configuration key '{}' has a type the environment layer cannot describe",
            self.path
        )))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.leaf(Kind::Boolean);
        v.visit_bool(false)
    }

    fn deserialize_i8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_i64(v)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_i64(v)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_i64(v)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.leaf(Kind::Integer);
        v.visit_i64(0)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_u64(v)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_u64(v)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_u64(v)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.leaf(Kind::Integer);
        v.visit_u64(0)
    }
    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_f64(v)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.leaf(Kind::Float);
        v.visit_f64(0.0)
    }

    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.leaf(Kind::String);
        v.visit_char(' ')
    }
    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.leaf(Kind::String);
        v.visit_str("")
    }
    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_str(v)
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_some(Tracer {
            optional: true,
            ..self
        })
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, Error> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        let element_path = format!("{}{ELEMENT}", self.path);
        let value = v.visit_seq(OneElement {
            keys: &mut *self.keys,
            path: Some(element_path.clone()),
        })?;
        let kind = match self.keys.remove(&element_path) {
            Some(element) => Kind::Array(Box::new(element.kind)),
            None => {
                // Elements that are tables: their fields were traced under `path[].field`.
                let prefix = format!("{element_path}.");
                let fields: Vec<String> = self
                    .keys
                    .keys()
                    .filter(|k| k.starts_with(&prefix))
                    .cloned()
                    .collect();
                if fields.is_empty() {
                    return Err(<Error as de::Error>::custom(format!(
                        "configuration key '{}': array elements must be plain values or tables",
                        self.path
                    )));
                }
                for f in fields {
                    self.keys.remove(&f);
                }
                Kind::Tables
            }
        };
        let optional = self.optional;
        self.keys.insert(self.path, Key { kind, optional });
        Ok(value)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        v.visit_map(Fields {
            keys: self.keys,
            prefix: self.path,
            fields: fields.iter(),
            current: "",
        })
    }

    /// A unit-variant enum (`min_alert_level = "low"`) is written as its variant's name.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        let first = variants.first().copied().unwrap_or_default();
        self.leaf(Kind::String);
        v.visit_enum(de::IntoDeserializer::<Error>::into_deserializer(first))
    }

    forward_to_deserialize_any! {
        bytes byte_buf unit unit_struct tuple tuple_struct map identifier ignored_any
    }
}

/// A struct's fields, each traced under `prefix.field`.
struct Fields<'a> {
    keys: &'a mut BTreeMap<String, Key>,
    prefix: String,
    fields: std::slice::Iter<'static, &'static str>,
    current: &'static str,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some(field) = self.fields.next() else {
            return Ok(None);
        };
        self.current = field;
        seed.deserialize(de::value::BorrowedStrDeserializer::new(field))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let path = if self.prefix.is_empty() {
            self.current.to_string()
        } else {
            format!("{}.{}", self.prefix, self.current)
        };
        seed.deserialize(Tracer {
            keys: &mut *self.keys,
            path,
            optional: false,
        })
    }
}

/// A sequence of one element, traced under the array's path plus [`ELEMENT`].
struct OneElement<'a> {
    keys: &'a mut BTreeMap<String, Key>,
    path: Option<String>,
}

impl<'de> SeqAccess<'de> for OneElement<'_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        let Some(path) = self.path.take() else {
            return Ok(None);
        };
        seed.deserialize(Tracer {
            keys: &mut *self.keys,
            path,
            optional: false,
        })
        .map(Some)
    }
}
