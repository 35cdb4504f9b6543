//! An Upstash `/pipeline` answer (`[{"result": …} | {"error": "…"}, …]`, strings in base64)
//! decoded straight into replies.
//!
//! Going through a `serde_json::Value` tree first allocates a map, a key string and a node per
//! value only to walk and drop them; at c=64 that was about a tenth of the client runtime
//! thread's own work on the REST path. This visitor builds the replies while it parses. Anything
//! it does not expect (an item that is not an object, a body that is not an array) makes it give
//! up, and the caller decodes through `Value` instead, with the detailed messages of that path.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value as Json;

use crate::reply::{Reply, StoreError};

/// The items of a well-formed answer, in order.
pub(crate) struct PipelineAnswer(pub(crate) Vec<Result<Reply, StoreError>>);

impl<'de> Deserialize<'de> for PipelineAnswer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(ItemsVisitor)
    }
}

struct ItemsVisitor;

impl<'de> Visitor<'de> for ItemsVisitor {
    type Value = PipelineAnswer;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of pipeline items")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PipelineAnswer, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(PipelineItem(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(PipelineAnswer(items))
    }
}

/// One `{"result": …}` or `{"error": …}` (an error wins when both are there).
struct PipelineItem(Result<Reply, StoreError>);

impl<'de> Deserialize<'de> for PipelineItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ItemVisitor)
    }
}

struct ItemVisitor;

impl<'de> Visitor<'de> for ItemVisitor {
    type Value = PipelineItem;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a pipeline item object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PipelineItem, A::Error> {
        let mut result = None;
        let mut error = None;
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Result => result = Some(map.next_value_seed(ReplySeed { top_level: true })?),
                Field::Error => error = Some(map.next_value::<Json>()?),
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(PipelineItem(match (error, result) {
            (Some(Json::String(message)), _) => Err(StoreError::Redis(message)),
            (Some(other), _) => Err(StoreError::Redis(other.to_string())),
            (None, Some(reply)) => reply,
            (None, None) => Err(StoreError::BadResponse(
                "a pipeline item has neither result nor error".into(),
            )),
        }))
    }
}

enum Field {
    Result,
    Error,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl Visitor<'_> for FieldVisitor {
            type Value = Field;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }

            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Field, E> {
                Ok(match name {
                    "result" => Field::Result,
                    "error" => Field::Error,
                    _ => Field::Other,
                })
            }
        }
        deserializer.deserialize_identifier(FieldVisitor)
    }
}

/// A reply value: strings are base64, except a top-level "OK".
#[derive(Clone, Copy)]
struct ReplySeed {
    top_level: bool,
}

type Decoded = Result<Reply, StoreError>;

impl<'de> DeserializeSeed<'de> for ReplySeed {
    type Value = Decoded;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Decoded, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ReplySeed {
    type Value = Decoded;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a reply value")
    }

    fn visit_unit<E>(self) -> Result<Decoded, E> {
        Ok(Ok(Reply::Nil))
    }

    fn visit_none<E>(self) -> Result<Decoded, E> {
        Ok(Ok(Reply::Nil))
    }

    fn visit_bool<E>(self, value: bool) -> Result<Decoded, E> {
        Ok(Ok(Reply::Int(i64::from(value))))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Decoded, E> {
        Ok(Ok(Reply::Int(value)))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Decoded, E> {
        Ok(Ok(match i64::try_from(value) {
            Ok(int) => Reply::Int(int),
            // Beyond i64, as the number's float text (what `Value::as_f64` gives).
            Err(_) => Reply::Bytes((value as f64).to_string().into_bytes()),
        }))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Decoded, E> {
        Ok(Ok(Reply::Bytes(value.to_string().into_bytes())))
    }

    fn visit_str<E>(self, text: &str) -> Result<Decoded, E> {
        if self.top_level && text == "OK" {
            return Ok(Ok(Reply::Bytes(b"OK".to_vec())));
        }
        Ok(STANDARD.decode(text).map(Reply::Bytes).map_err(|_| {
            StoreError::BadResponse(format!("a reply string is not base64: {text:?}"))
        }))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Decoded, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        let mut first_error = None;
        // Read to the end even after a bad element, so the parse stays in step.
        while let Some(item) = seq.next_element_seed(ReplySeed { top_level: false })? {
            match item {
                Ok(reply) => items.push(reply),
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        Ok(match first_error {
            Some(err) => Err(err),
            None => Ok(Reply::Array(items)),
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Decoded, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Err(StoreError::BadResponse(
            "unexpected object in a reply".into(),
        )))
    }
}
