//! OTLP's protobuf encoding of finished spans: the body of an OTLP/HTTP export
//! (`ExportTraceServiceRequest`, `opentelemetry/proto/collector/trace/v1/trace_service.proto`).
//!
//! The OpenTelemetry SDK's exporter converts each span into the generated protobuf structs (every
//! string and attribute copied again, the spans grouped by scope through a hash map) and then
//! encodes them, computing nested lengths level by level. Measured with callgrind, that cost the
//! gateway more per request than everything else observability does on it. The spans here all
//! share one resource and one instrumentation scope, so this writes the wire format straight from
//! the SDK's [`SpanData`]: the resource and the scope are encoded once, at start, and each span is
//! written once, into its own message. The output decodes to the same message the
//! SDK's transform builds (tested against it).
//!
//! A span is encoded when it ends ([`span_message`]), on the request's thread while its strings are
//! still in the cache, and queued as bytes; an export only frames the queued messages
//! ([`Encoder::request`]). Encoding a whole batch at export time read each span's attribute strings
//! back from memory long evicted from the cache, and freed them there: it cost the gateway more
//! than the encoding itself (docs/BENCHMARKS.md, "Spans and callback payloads encoded when the
//! request ends").

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::{Array, InstrumentationScope, Value};
use opentelemetry_sdk::trace::SpanData;
use opentelemetry_sdk::Resource;

// Wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// `SpanFlags`: the flags carry whether the parent is remote.
const CONTEXT_HAS_IS_REMOTE: u32 = 0x100;
const CONTEXT_IS_REMOTE: u32 = 0x200;

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn varint_len(n: u64) -> usize {
    // 1 byte per 7 bits, at least one.
    (64 - (n | 1).leading_zeros() as usize).div_ceil(7)
}

fn tag(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, u64::from(field << 3 | u32::from(wire)));
}

fn bytes_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    tag(out, field, LEN);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A proto3 string or bytes field: omitted when empty.
fn opt_bytes_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    if !bytes.is_empty() {
        bytes_field(out, field, bytes);
    }
}

fn fixed64_field(out: &mut Vec<u8>, field: u32, n: u64) {
    if n != 0 {
        tag(out, field, FIXED64);
        out.extend_from_slice(&n.to_le_bytes());
    }
}

fn varint_field(out: &mut Vec<u8>, field: u32, n: u64) {
    if n != 0 {
        tag(out, field, VARINT);
        varint(out, n);
    }
}

/// `AnyValue`'s fields for one value (a oneof: written even when it is the default).
fn any_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::String(s) => bytes_field(out, 1, s.as_str().as_bytes()),
        Value::Bool(b) => {
            tag(out, 2, VARINT);
            out.push(u8::from(*b));
        }
        Value::I64(i) => {
            tag(out, 3, VARINT);
            varint(out, *i as u64);
        }
        Value::F64(f) => {
            tag(out, 4, FIXED64);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::Array(array) => {
            // ArrayValue { repeated AnyValue values = 1 }, nested: through a scratch buffer.
            let mut values = Vec::new();
            let mut item = Vec::new();
            let mut push = |v: Value| {
                item.clear();
                any_value(&mut item, &v);
                bytes_field(&mut values, 1, &item);
            };
            match array {
                Array::Bool(v) => v.iter().for_each(|b| push(Value::Bool(*b))),
                Array::I64(v) => v.iter().for_each(|i| push(Value::I64(*i))),
                Array::F64(v) => v.iter().for_each(|f| push(Value::F64(*f))),
                Array::String(v) => v.iter().for_each(|s| push(Value::String(s.clone()))),
                _ => {}
            }
            bytes_field(out, 5, &values);
        }
        _ => {}
    }
}

/// One `KeyValue` as field `field` of its parent. Scalars' lengths are known without writing them
/// twice; an array goes through a scratch buffer.
fn key_value(out: &mut Vec<u8>, field: u32, key: &str, value: &Value) {
    // A scalar's encoded length is known up front and it is written in place; any other value is
    // encoded once into a scratch buffer to learn its length.
    let scalar_len = match value {
        Value::String(s) => {
            let n = s.as_str().len();
            Some(1 + varint_len(n as u64) + n)
        }
        Value::Bool(_) => Some(2),
        Value::I64(i) => Some(1 + varint_len(*i as u64)),
        Value::F64(_) => Some(9),
        _ => None,
    };
    let scratch = match scalar_len {
        Some(_) => Vec::new(),
        None => {
            let mut any = Vec::new();
            any_value(&mut any, value);
            any
        }
    };
    let any_len = scalar_len.unwrap_or(scratch.len());
    let kv_len =
        1 + varint_len(key.len() as u64) + key.len() + 1 + varint_len(any_len as u64) + any_len;
    tag(out, field, LEN);
    varint(out, kv_len as u64);
    bytes_field(out, 1, key.as_bytes());
    tag(out, 2, LEN);
    varint(out, any_len as u64);
    match scalar_len {
        Some(_) => any_value(out, value),
        None => out.extend_from_slice(&scratch),
    }
}

fn unix_nanos(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// One `Span` message's fields (events and links as the SDK records them; the gateway's spans
/// have none).
fn span(out: &mut Vec<u8>, span: &SpanData) {
    let ctx = &span.span_context;
    bytes_field(out, 1, &ctx.trace_id().to_bytes());
    bytes_field(out, 2, &ctx.span_id().to_bytes());
    opt_bytes_field(out, 3, ctx.trace_state().header().as_bytes());
    if span.parent_span_id != opentelemetry::trace::SpanId::INVALID {
        bytes_field(out, 4, &span.parent_span_id.to_bytes());
    }
    opt_bytes_field(out, 5, span.name.as_bytes());
    let kind: u64 = match span.span_kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    };
    varint_field(out, 6, kind);
    fixed64_field(out, 7, unix_nanos(span.start_time));
    fixed64_field(out, 8, unix_nanos(span.end_time));
    for kv in &span.attributes {
        key_value(out, 9, kv.key.as_str(), &kv.value);
    }
    varint_field(out, 10, u64::from(span.dropped_attributes_count));
    let mut nested = Vec::new();
    for event in span.events.iter() {
        nested.clear();
        fixed64_field(&mut nested, 1, unix_nanos(event.timestamp));
        opt_bytes_field(&mut nested, 2, event.name.as_bytes());
        for kv in &event.attributes {
            key_value(&mut nested, 3, kv.key.as_str(), &kv.value);
        }
        varint_field(&mut nested, 4, u64::from(event.dropped_attributes_count));
        bytes_field(out, 11, &nested);
    }
    varint_field(out, 12, u64::from(span.events.dropped_count));
    for link in span.links.iter() {
        nested.clear();
        let lc = &link.span_context;
        bytes_field(&mut nested, 1, &lc.trace_id().to_bytes());
        bytes_field(&mut nested, 2, &lc.span_id().to_bytes());
        opt_bytes_field(&mut nested, 3, lc.trace_state().header().as_bytes());
        for kv in &link.attributes {
            key_value(&mut nested, 4, kv.key.as_str(), &kv.value);
        }
        varint_field(&mut nested, 5, u64::from(link.dropped_attributes_count));
        let flags = u32::from(lc.trace_flags().to_u8())
            | CONTEXT_HAS_IS_REMOTE
            | if lc.is_remote() { CONTEXT_IS_REMOTE } else { 0 };
        tag(&mut nested, 6, FIXED32);
        nested.extend_from_slice(&flags.to_le_bytes());
        bytes_field(out, 13, &nested);
    }
    varint_field(out, 14, u64::from(span.links.dropped_count));
    // Status { string message = 2; StatusCode code = 3 }, always present.
    nested.clear();
    let (code, message): (u64, &str) = match &span.status {
        Status::Unset => (0, ""),
        Status::Ok => (1, ""),
        Status::Error { description } => (2, description),
    };
    opt_bytes_field(&mut nested, 2, message.as_bytes());
    varint_field(&mut nested, 3, code);
    bytes_field(out, 15, &nested);
    // Fields in tag order, as prost writes them.
    let flags = u32::from(ctx.trace_flags().to_u8())
        | CONTEXT_HAS_IS_REMOTE
        | if span.parent_span_is_remote {
            CONTEXT_IS_REMOTE
        } else {
            0
        };
    tag(out, 16, FIXED32);
    out.extend_from_slice(&flags.to_le_bytes());
}

/// One span's `Span` message (its fields, without a tag or a length).
pub fn span_message(s: &SpanData) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    span(&mut out, s);
    out
}

/// Encodes export requests for one resource and one instrumentation scope.
pub struct Encoder {
    /// `ResourceSpans.resource` (field 1, with its tag and length).
    resource: Vec<u8>,
    /// `ResourceSpans.schema_url` (field 3, with its tag), or nothing.
    resource_schema: Vec<u8>,
    /// `ScopeSpans.scope` (field 1, with its tag and length).
    scope: Vec<u8>,
    /// `ScopeSpans.schema_url` (field 3, with its tag), or nothing.
    scope_schema: Vec<u8>,
}

impl Encoder {
    pub fn new(resource: &Resource, scope: &InstrumentationScope) -> Encoder {
        let mut attrs = Vec::new();
        for (key, value) in resource.iter() {
            key_value(&mut attrs, 1, key.as_str(), value);
        }
        let mut encoded_resource = Vec::new();
        bytes_field(&mut encoded_resource, 1, &attrs);
        let mut resource_schema = Vec::new();
        opt_bytes_field(
            &mut resource_schema,
            3,
            resource.schema_url().unwrap_or_default().as_bytes(),
        );
        let mut s = Vec::new();
        opt_bytes_field(&mut s, 1, scope.name().as_bytes());
        opt_bytes_field(&mut s, 2, scope.version().unwrap_or_default().as_bytes());
        for kv in scope.attributes() {
            key_value(&mut s, 3, kv.key.as_str(), &kv.value);
        }
        let mut encoded_scope = Vec::new();
        bytes_field(&mut encoded_scope, 1, &s);
        let mut scope_schema = Vec::new();
        opt_bytes_field(
            &mut scope_schema,
            3,
            scope.schema_url().unwrap_or_default().as_bytes(),
        );
        Encoder {
            resource: encoded_resource,
            resource_schema,
            scope: encoded_scope,
            scope_schema,
        }
    }

    /// The `ExportTraceServiceRequest` carrying `spans` (all of this encoder's scope).
    #[cfg(test)]
    pub fn encode(&self, spans: &[SpanData]) -> Vec<u8> {
        let messages: Vec<Vec<u8>> = spans.iter().map(span_message).collect();
        self.request(messages.iter().map(Vec::as_slice))
    }

    /// The `ExportTraceServiceRequest` carrying the span messages `spans` (each from
    /// [`span_message`], all of this encoder's scope).
    pub fn request<'a>(&self, spans: impl Iterator<Item = &'a [u8]> + Clone) -> Vec<u8> {
        // ScopeSpans.spans (field 2): each message with its tag and length.
        let spans_len: usize = spans
            .clone()
            .map(|m| 1 + varint_len(m.len() as u64) + m.len())
            .sum();
        let scope_spans_len = self.scope.len() + spans_len + self.scope_schema.len();
        let resource_spans_len = self.resource.len()
            + 1
            + varint_len(scope_spans_len as u64)
            + scope_spans_len
            + self.resource_schema.len();
        let mut out = Vec::with_capacity(resource_spans_len + 8);
        // ExportTraceServiceRequest.resource_spans (field 1): one ResourceSpans.
        tag(&mut out, 1, LEN);
        varint(&mut out, resource_spans_len as u64);
        out.extend_from_slice(&self.resource);
        // ResourceSpans.scope_spans (field 2): one ScopeSpans.
        tag(&mut out, 2, LEN);
        varint(&mut out, scope_spans_len as u64);
        out.extend_from_slice(&self.scope);
        for m in spans {
            bytes_field(&mut out, 2, m);
        }
        out.extend_from_slice(&self.scope_schema);
        out.extend_from_slice(&self.resource_schema);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    use opentelemetry::KeyValue;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use prost::Message as _;
    use std::borrow::Cow;
    use std::time::{Duration, UNIX_EPOCH};

    fn spans(scope: &InstrumentationScope) -> Vec<SpanData> {
        let trace = TraceId::from_bytes(0x0af7651916cd43dd8448eb211c80319c_u128.to_be_bytes());
        let server = SpanId::from_bytes(0xb7ad6b7169203331_u64.to_be_bytes());
        let remote_parent = SpanId::from_bytes(0x00f067aa0ba902b7_u64.to_be_bytes());
        let start = UNIX_EPOCH + Duration::from_nanos(1_765_000_000_123_456_789);
        let ctx = |id| {
            SpanContext::new(
                trace,
                id,
                TraceFlags::SAMPLED,
                false,
                TraceState::from_key_value([("vendor", "v1")]).unwrap(),
            )
        };
        vec![
            SpanData {
                span_context: ctx(server),
                parent_span_id: remote_parent,
                parent_span_is_remote: true,
                span_kind: SpanKind::Server,
                name: Cow::Borrowed("Received Proxy Server Request"),
                start_time: start,
                end_time: start + Duration::from_micros(1_250),
                attributes: vec![
                    KeyValue::new("gen_ai.request.model", "gpt-4o"),
                    KeyValue::new("http.response.status_code", 200_i64),
                    KeyValue::new("litellm.cache_hit", false),
                    KeyValue::new("litellm.response_cost", 0.000_42),
                    KeyValue::new("gen_ai.usage.input_tokens", -1_i64),
                    KeyValue::new(
                        "tags",
                        Value::Array(Array::String(vec!["a".into(), "b".into()])),
                    ),
                    KeyValue::new("long", "x".repeat(300)),
                ],
                dropped_attributes_count: 0,
                events: SpanEvents::default(),
                links: SpanLinks::default(),
                status: Status::Ok,
                instrumentation_scope: scope.clone(),
            },
            SpanData {
                span_context: ctx(SpanId::from_bytes(7_u64.to_be_bytes())),
                parent_span_id: server,
                parent_span_is_remote: false,
                span_kind: SpanKind::Client,
                name: Cow::Owned("chat openai/gpt-4o".into()),
                start_time: start,
                end_time: start + Duration::from_micros(900),
                attributes: vec![KeyValue::new("error.type", "429")],
                dropped_attributes_count: 0,
                events: SpanEvents::default(),
                links: SpanLinks::default(),
                status: Status::error("rate limited"),
                instrumentation_scope: scope.clone(),
            },
            SpanData {
                span_context: ctx(SpanId::from_bytes(9_u64.to_be_bytes())),
                parent_span_id: SpanId::INVALID,
                parent_span_is_remote: false,
                span_kind: SpanKind::Internal,
                name: Cow::Borrowed(""),
                start_time: start,
                end_time: start,
                attributes: vec![],
                dropped_attributes_count: 0,
                events: SpanEvents::default(),
                links: SpanLinks::default(),
                status: Status::Unset,
                instrumentation_scope: scope.clone(),
            },
        ]
    }

    #[test]
    fn the_encoding_decodes_to_what_the_sdk_transform_builds() {
        let scope = InstrumentationScope::builder("tollgate")
            .with_version("1.2.3")
            .build();
        let resource = Resource::builder_empty()
            .with_service_name("litellm")
            .with_attribute(KeyValue::new("deployment.environment", "production"))
            .build();
        let encoder = Encoder::new(&resource, &scope);
        let ours = ExportTraceServiceRequest::decode(encoder.encode(&spans(&scope)).as_slice())
            .expect("decodes");
        let expected = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(
                spans(&scope),
                &ResourceAttributesWithSchema::from(&resource),
            ),
        };
        assert_eq!(ours, expected);
        // And byte for byte what prost writes for that message.
        assert_eq!(encoder.encode(&spans(&scope)), expected.encode_to_vec());
    }

    #[test]
    fn varint_lengths() {
        for n in [
            0_u64,
            1,
            127,
            128,
            16_383,
            16_384,
            u32::MAX as u64,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            varint(&mut out, n);
            assert_eq!(out.len(), varint_len(n), "{n}");
        }
    }
}
