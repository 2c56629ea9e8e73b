//! The AWS event-stream binary framing (`application/vnd.amazon.eventstream`) that
//! ConverseStream answers with. All integers are big-endian:
//!
//! ```text
//! total_length u32 | headers_length u32 | prelude_crc u32 | headers | payload | message_crc u32
//! ```
//!
//! The prelude CRC covers the first 8 bytes, the message CRC everything before it (CRC-32, the
//! zlib/gzip polynomial). A header is `name_len u8 | name | type u8 | value`; Bedrock only sends
//! strings (type 7: `u16` length + UTF-8), but every type is parsed so that others are skipped.

use bytes::{Buf, Bytes, BytesMut};

/// Prelude (12 bytes) plus the trailing message CRC.
const OVERHEAD: usize = 16;
/// Larger frames are refused (AWS caps event-stream messages at 16 MiB of payload).
const MAX_MESSAGE: usize = 24 * 1024 * 1024;

/// One decoded message: its string headers and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub headers: Vec<(String, String)>,
    pub payload: Bytes,
}

impl Message {
    /// The value of a string header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Encode one message whose headers are all strings.
pub fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut hbuf = Vec::new();
    for (name, value) in headers {
        let name = &name.as_bytes()[..name.len().min(255)];
        let value = &value.as_bytes()[..value.len().min(u16::MAX as usize)];
        hbuf.push(name.len() as u8);
        hbuf.extend_from_slice(name);
        hbuf.push(7);
        hbuf.extend_from_slice(&(value.len() as u16).to_be_bytes());
        hbuf.extend_from_slice(value);
    }
    let total = OVERHEAD + hbuf.len() + payload.len();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(hbuf.len() as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&hbuf);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// Incremental decoder: push bytes as they arrive, get the messages they complete.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: BytesMut,
}

impl Decoder {
    /// Append `chunk` and decode every complete message. A corrupt frame (bad CRC, impossible
    /// lengths, malformed headers) is an error: the stream cannot be resynchronised.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Message>, String> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        while self.buf.len() >= 12 {
            let total =
                u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
            let headers_len =
                u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]) as usize;
            let prelude_crc =
                u32::from_be_bytes([self.buf[8], self.buf[9], self.buf[10], self.buf[11]]);
            if crc32fast::hash(&self.buf[..8]) != prelude_crc {
                return Err("event-stream prelude CRC mismatch".into());
            }
            if !(OVERHEAD..=MAX_MESSAGE).contains(&total) || headers_len > total - OVERHEAD {
                return Err(format!(
                    "event-stream frame with impossible lengths (total {total}, headers {headers_len})"
                ));
            }
            if self.buf.len() < total {
                break;
            }
            let frame = self.buf.split_to(total).freeze();
            let crc = u32::from_be_bytes([
                frame[total - 4],
                frame[total - 3],
                frame[total - 2],
                frame[total - 1],
            ]);
            if crc32fast::hash(&frame[..total - 4]) != crc {
                return Err("event-stream message CRC mismatch".into());
            }
            let headers = parse_headers(&frame[12..12 + headers_len])?;
            let payload = frame.slice(12 + headers_len..total - 4);
            out.push(Message { headers, payload });
        }
        Ok(out)
    }

    /// Whether bytes of an unfinished message are buffered.
    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty()
    }
}

fn parse_headers(mut raw: &[u8]) -> Result<Vec<(String, String)>, String> {
    let bad = || "malformed event-stream headers".to_string();
    let mut headers = Vec::new();
    while raw.has_remaining() {
        let name_len = raw.get_u8() as usize;
        if raw.len() < name_len + 1 {
            return Err(bad());
        }
        let name = String::from_utf8_lossy(&raw[..name_len]).into_owned();
        raw.advance(name_len);
        let kind = raw.get_u8();
        let fixed = match kind {
            0 | 1 => Some(0),
            2 => Some(1),
            3 => Some(2),
            4 => Some(4),
            5 | 8 => Some(8),
            9 => Some(16),
            6 | 7 => None,
            _ => return Err(bad()),
        };
        match fixed {
            Some(n) => {
                if raw.len() < n {
                    return Err(bad());
                }
                let value = match kind {
                    0 => "true".to_string(),
                    1 => "false".to_string(),
                    _ => hex::encode(&raw[..n]),
                };
                raw.advance(n);
                headers.push((name, value));
            }
            None => {
                if raw.len() < 2 {
                    return Err(bad());
                }
                let len = raw.get_u16() as usize;
                if raw.len() < len {
                    return Err(bad());
                }
                let value = String::from_utf8_lossy(&raw[..len]).into_owned();
                raw.advance(len);
                headers.push((name, value));
            }
        }
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, payload: &str) -> Vec<u8> {
        encode(
            &[
                (":event-type", kind),
                (":content-type", "application/json"),
                (":message-type", "event"),
            ],
            payload.as_bytes(),
        )
    }

    #[test]
    fn decodes_across_every_split() {
        let mut raw = event("messageStart", r#"{"p":"abcd","role":"assistant"}"#);
        raw.extend(event(
            "contentBlockDelta",
            r#"{"contentBlockIndex":0,"delta":{"text":"Hi"},"p":"abcdefghij"}"#,
        ));
        for split in 0..=raw.len() {
            let mut d = Decoder::default();
            let mut msgs = d.push(&raw[..split]).expect("ok");
            msgs.extend(d.push(&raw[split..]).expect("ok"));
            assert_eq!(msgs.len(), 2, "split {split}");
            assert_eq!(msgs[0].header(":event-type"), Some("messageStart"));
            assert_eq!(msgs[1].header(":message-type"), Some("event"));
            assert!(msgs[1].payload.starts_with(b"{\"contentBlockIndex\""));
            assert!(!d.has_partial());
        }
        // Byte by byte.
        let mut d = Decoder::default();
        let n: usize = raw
            .iter()
            .map(|b| d.push(std::slice::from_ref(b)).expect("ok").len())
            .sum();
        assert_eq!(n, 2);
    }

    #[test]
    fn layout_matches_the_spec() {
        let raw = encode(&[(":message-type", "event")], b"{}");
        // 16 overhead + header (1 + 13 + 1 + 2 + 5) + payload 2.
        assert_eq!(raw.len(), 16 + 22 + 2);
        assert_eq!(&raw[..4], &(raw.len() as u32).to_be_bytes());
        assert_eq!(&raw[4..8], &22u32.to_be_bytes());
        assert_eq!(&raw[8..12], &crc32fast::hash(&raw[..8]).to_be_bytes());
        assert_eq!(raw[12], 13);
        assert_eq!(&raw[13..26], b":message-type");
        assert_eq!(raw[26], 7);
    }

    #[test]
    fn corrupt_frames_are_errors_and_other_header_types_are_skipped() {
        let mut raw = event("messageStop", r#"{"stopReason":"end_turn"}"#);
        let last = raw.len() - 6;
        raw[last] ^= 0x20;
        assert!(Decoder::default()
            .push(&raw)
            .unwrap_err()
            .contains("message CRC"));
        let mut raw = event("x", "{}");
        raw[1] ^= 1;
        assert!(Decoder::default()
            .push(&raw)
            .unwrap_err()
            .contains("prelude"));

        // A frame with a bool, an int and a timestamp header before a string one.
        let mut h = Vec::new();
        h.extend([1u8, b'a', 0]);
        h.extend([1u8, b'b', 4, 0, 0, 0, 7]);
        h.extend([1u8, b't', 8, 0, 0, 0, 0, 0, 0, 0, 1]);
        h.extend([1u8, b's', 7, 0, 2, b'o', b'k']);
        let total = 16 + h.len() + 2;
        let mut f = Vec::new();
        f.extend((total as u32).to_be_bytes());
        f.extend((h.len() as u32).to_be_bytes());
        f.extend(crc32fast::hash(&f).to_be_bytes());
        f.extend(&h);
        f.extend(b"{}");
        f.extend(crc32fast::hash(&f).to_be_bytes());
        let msgs = Decoder::default().push(&f).expect("ok");
        assert_eq!(msgs[0].header("a"), Some("true"));
        assert_eq!(msgs[0].header("s"), Some("ok"));
        assert_eq!(msgs[0].header("b"), Some("00000007"));
    }
}
