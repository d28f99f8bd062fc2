//! JSON read and written as text: representations assembled from stored
//! documents without building a tree of values. A page of 100 users spent
//! most of its rendering time parsing each stored document into values,
//! projecting them and serialising them again, to send what was stored.

use std::fmt;

use serde::Serialize;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// The members of a JSON object, in document order, each value left as
/// the text it is (checked to be JSON, not parsed into values).
pub fn object_members(text: &str) -> Result<Vec<(String, &RawValue)>, serde_json::Error> {
    serde_json::from_str::<Members<'_>>(text).map(|m| m.0)
}

struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(member) = map.next_entry::<String, &'de RawValue>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

/// A JSON object written member by member; keys are not checked for
/// repeats, so callers write each once.
pub struct ObjectWriter {
    out: Vec<u8>,
}

impl ObjectWriter {
    pub fn with_capacity(capacity: usize) -> Self {
        let mut out = Vec::with_capacity(capacity);
        out.push(b'{');
        ObjectWriter { out }
    }

    /// A member whose value is JSON text already.
    pub fn raw(&mut self, key: &str, value: &RawValue) -> Result<(), serde_json::Error> {
        self.raw_bytes(key, value.get().as_bytes())
    }

    /// A member whose value is JSON text the caller wrote (not checked).
    pub fn raw_bytes(&mut self, key: &str, json: &[u8]) -> Result<(), serde_json::Error> {
        self.key(key)?;
        self.out.extend_from_slice(json);
        Ok(())
    }

    pub fn value(&mut self, key: &str, value: &impl Serialize) -> Result<(), serde_json::Error> {
        self.key(key)?;
        serde_json::to_writer(&mut self.out, value)
    }

    fn key(&mut self, key: &str) -> Result<(), serde_json::Error> {
        if self.out.len() > 1 {
            self.out.push(b',');
        }
        serde_json::to_writer(&mut self.out, key)?;
        self.out.push(b':');
        Ok(())
    }

    /// The object's text, as UTF-8 bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.out.push(b'}');
        self.out
    }
}

/// A JSON array of values that are JSON text already.
pub fn raw_array<T: AsRef<[u8]>>(items: &[T]) -> Vec<u8> {
    let mut out = Vec::with_capacity(items.iter().map(|i| i.as_ref().len() + 1).sum::<usize>() + 2);
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item.as_ref());
    }
    out.push(b']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn object_members_keep_document_order_escapes_and_nested_text() {
        let text = r#"{"b":1, "a\"q":{"x":[1,2]},"c":"s\u00e9"}"#;
        let members = object_members(text).expect("an object");
        let keys: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["b", "a\"q", "c"]);
        assert_eq!(members[1].1.get(), r#"{"x":[1,2]}"#);
        assert!(object_members("[1]").is_err());
        assert!(object_members(r#"{"a":}"#).is_err());
    }

    #[test]
    fn written_objects_and_arrays_are_the_json_they_say() {
        let members = object_members(r#"{"k":{"n":[true,null]}}"#).expect("an object");
        let mut writer = ObjectWriter::with_capacity(64);
        writer.raw("k", members[0].1).expect("raw");
        writer.value("quote\"d", &json!({"v": "é\n"})).expect("value");
        let object = writer.finish();
        let parsed: Value = serde_json::from_slice(&object).expect("valid JSON");
        assert_eq!(parsed, json!({"k": {"n": [true, null]}, "quote\"d": {"v": "é\n"}}));
        let array = raw_array(&[object.clone(), b"2".to_vec()]);
        let parsed: Value = serde_json::from_slice(&array).expect("valid JSON");
        assert_eq!(parsed[1], json!(2));
        assert_eq!(
            serde_json::from_slice::<Value>(&raw_array::<Vec<u8>>(&[])).expect("valid"),
            json!([])
        );
        assert_eq!(ObjectWriter::with_capacity(2).finish(), b"{}");
    }
}
