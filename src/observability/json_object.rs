//! A JSON object written field by field into a byte buffer: how the callbacks' payloads are
//! serialized.
//!
//! The payloads are many short fields (ids, times, the key hash, counts) whose names are fixed.
//! Through serde every field name went through the serializer's string escaping, one call per name
//! (about 90 instructions each with sonic-rs, 77 names a request for `generic_api` and `langfuse`:
//! docs/BENCHMARKS.md, "Callback payloads written field by field"). Here a name is copied as it is
//! (names are static identifiers, checked in debug builds); a value is scanned once for characters
//! JSON must escape and copied when it has none, which is nearly always.

/// An object being written; [`JsonObject::end`] closes it.
pub struct JsonObject<'o> {
    out: &'o mut Vec<u8>,
    empty: bool,
}

impl<'o> JsonObject<'o> {
    /// Open an object at the end of `out`.
    pub fn begin(out: &'o mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, empty: true }
    }

    /// Close the object.
    pub fn end(self) {
        self.out.push(b'}');
    }

    fn key(&mut self, key: &'static str) -> &mut Vec<u8> {
        debug_assert!(
            key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "field name {key:?} would need escaping"
        );
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    pub fn str(&mut self, key: &'static str, value: &str) -> &mut Self {
        self.str_concat(key, &[value])
    }

    /// A string value made of `parts` written one after the other (an id with a suffix), without
    /// building it first.
    pub fn str_concat(&mut self, key: &'static str, parts: &[&str]) -> &mut Self {
        let out = self.key(key);
        write_str(out, parts);
        self
    }

    /// A string, or `null`.
    pub fn opt_str(&mut self, key: &'static str, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.str(key, v),
            None => self.raw(key, "null"),
        }
    }

    pub fn i64(&mut self, key: &'static str, value: i64) -> &mut Self {
        let out = self.key(key);
        out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        self
    }

    /// A number (`null` when it is not finite, as serde_json writes it).
    pub fn f64(&mut self, key: &'static str, value: f64) -> &mut Self {
        let out = self.key(key);
        write_f64(out, value);
        self
    }

    /// A number, or `null`.
    pub fn opt_f64(&mut self, key: &'static str, value: Option<f64>) -> &mut Self {
        match value {
            Some(v) => self.f64(key, v),
            None => self.raw(key, "null"),
        }
    }

    pub fn bool(&mut self, key: &'static str, value: bool) -> &mut Self {
        self.raw(key, if value { "true" } else { "false" })
    }

    /// A JSON text written as it is (a stored JSON document, `null`).
    pub fn raw(&mut self, key: &'static str, json: &str) -> &mut Self {
        let out = self.key(key);
        out.extend_from_slice(json.as_bytes());
        self
    }

    /// An array of strings.
    pub fn strs(&mut self, key: &'static str, values: &[&str]) -> &mut Self {
        let out = self.key(key);
        out.push(b'[');
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(out, &[v]);
        }
        out.push(b']');
        self
    }

    /// Any JSON value, written by `fill` at the end of the buffer (a whole payload, an array of
    /// payloads written elsewhere).
    pub fn value_with(&mut self, key: &'static str, fill: impl FnOnce(&mut Vec<u8>)) -> &mut Self {
        fill(self.key(key));
        self
    }

    /// A nested object, written by `fill`.
    pub fn object(
        &mut self,
        key: &'static str,
        fill: impl FnOnce(&mut JsonObject<'_>),
    ) -> &mut Self {
        let out = self.key(key);
        let mut nested = JsonObject::begin(out);
        fill(&mut nested);
        nested.end();
        self
    }
}

fn write_f64(out: &mut Vec<u8>, value: f64) {
    if value.is_finite() {
        out.extend_from_slice(zmij::Buffer::new().format_finite(value).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

/// Whether `s` holds a character JSON must escape (a quote, a backslash, a control character).
/// Written without an early exit so that it compiles to a vector loop.
fn needs_escape(s: &str) -> bool {
    s.bytes().fold(false, |found, b| {
        found | (b < 0x20) | (b == b'"') | (b == b'\\')
    })
}

/// One JSON string holding `parts` one after the other.
fn write_str(out: &mut Vec<u8>, parts: &[&str]) {
    out.push(b'"');
    for part in parts {
        if needs_escape(part) {
            escape_into(out, part);
        } else {
            out.extend_from_slice(part.as_bytes());
        }
    }
    out.push(b'"');
}

/// `s` with JSON's escapes, without the quotes (the rare path).
fn escape_into(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in s.bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            0..=0x1f => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn written(fill: impl FnOnce(&mut JsonObject<'_>)) -> Value {
        let mut out = Vec::new();
        let mut o = JsonObject::begin(&mut out);
        fill(&mut o);
        o.end();
        serde_json::from_slice(&out).expect("valid JSON")
    }

    #[test]
    fn fields_of_every_kind_read_back_as_serde_json_writes_them() {
        let tricky = "quote \" backslash \\ newline \n tab \t bell \u{7} nul \0 é 😀 </script>";
        let v = written(|o| {
            o.str("plain", "sk-hash-0123")
                .str("tricky", tricky)
                .str_concat("id", &["call-1", "-trace"])
                .str_concat("escaped_part", &["a\"", "b\n"])
                .opt_str("none", None)
                .opt_str("some", Some("x"))
                .i64("neg", -42)
                .i64("max", i64::MAX)
                .f64("cost", 0.000_123)
                .f64("whole", 3.0)
                .f64("nan", f64::NAN)
                .opt_f64("later", None)
                .bool("hit", true)
                .raw("stored", r#"[{"role":"user","content":"hi"}]"#)
                .strs("tags", &["a", "b\"c"])
                .strs("empty", &[])
                .object("nested", |n| {
                    n.str("k", "v").object("deeper", |d| {
                        d.i64("n", 1);
                    });
                })
                .object("empty_object", |_| {});
        });
        assert_eq!(
            v,
            json!({
                "plain": "sk-hash-0123",
                "tricky": tricky,
                "id": "call-1-trace",
                "escaped_part": "a\"b\n",
                "none": null,
                "some": "x",
                "neg": -42,
                "max": i64::MAX,
                "cost": 0.000_123,
                "whole": 3.0,
                "nan": null,
                "later": null,
                "hit": true,
                "stored": [{"role": "user", "content": "hi"}],
                "tags": ["a", "b\"c"],
                "empty": [],
                "nested": {"k": "v", "deeper": {"n": 1}},
                "empty_object": {},
            })
        );
    }

    #[test]
    fn every_control_character_is_escaped() {
        let all: String = (0u8..0x20).map(char::from).collect();
        let v = written(|o| {
            o.str("s", &all);
        });
        assert_eq!(v["s"], Value::String(all));
    }
}
