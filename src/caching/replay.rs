//! Stored responses ⇄ streams: the cache keeps one canonical form per entry, the complete OpenAI
//! response a non-streaming call returns (`chat.completion`, `text_completion`, or an embedding
//! list), whichever way the request that filled it was answered.
//!
//! * [`record`] watches a stream on its way to the client and hands its chunks over once it has
//!   completed (never a cut or failed one);
//! * [`assemble`] turns those chunks into the complete response;
//! * [`replay`] turns a complete response back into the stream a streaming request expects.
//!
//! What is merged, per choice `index`: the role, `content`, `refusal`, `reasoning_content`
//! (concatenated), `thinking_blocks` (appended), `tool_calls` by their `index` (`id`, `type`,
//! `function.name`, `function.arguments` concatenated), the legacy `function_call`,
//! `finish_reason`, and `logprobs` (their arrays concatenated, which covers chat's `content` /
//! `refusal` and legacy completions' `tokens`, `token_logprobs`, `top_logprobs`, `text_offset`);
//! of the envelope, `id`, `created`, `model`, `system_fingerprint`, `service_tier`, and the last
//! chunk's `usage`, kept raw (every detail object the provider sent). Anything else a chunk
//! carries (`annotations`, `audio`, Azure's `content_filter_results` and `prompt_filter_results`,
//! `obfuscation`, other vendor fields) is not in the assembled response. A message's `content`
//! is `null` when no text came, or when only the opening delta's `""` came before tool calls or a
//! refusal (as a non-streaming response says it).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use tollgate_wire::openai;

use crate::llm::{CallKind, Usage};
use crate::outcome::{ChunkStream, Completion, StreamItem};

/// A replayed text is cut into at most this many pieces (per field of each choice)...
const MAX_PIECES: usize = 16;
/// ...of at least this many bytes each, so that a short answer comes in one or two chunks.
const MIN_PIECE_BYTES: usize = 48;

/// A completed stream's chunks (the JSON of each `StreamItem::Chunk`, in order) assembled into the
/// complete response a non-streaming call would have returned. `None` when the chunks do not make
/// a response: a chunk that is not an OpenAI chunk, no choice at all, or an embedding (those never
/// stream).
pub fn assemble(kind: CallKind, chunks: &[Bytes]) -> Option<Completion> {
    if kind == CallKind::Embedding {
        return None;
    }
    let mut head = Head::default();
    let mut choices: BTreeMap<u32, ChoiceAcc> = BTreeMap::new();
    for chunk in chunks {
        let chunk: EnvelopeIn = serde_json::from_slice(chunk).ok()?;
        head.merge(chunk.head);
        for choice in chunk.choices.unwrap_or_default() {
            choices.entry(choice.index).or_default().merge(choice);
        }
    }
    if choices.is_empty() {
        return None;
    }
    let id = head.id.unwrap_or_default();
    let created = head.created.unwrap_or(0);
    let model = head.model.unwrap_or_default();
    let extra = head_extra(
        head.usage.clone(),
        head.service_tier,
        head.system_fingerprint,
    );
    let body = match kind {
        CallKind::Chat => encode(&openai::ChatCompletion {
            id: Cow::Borrowed(&id),
            object: Cow::Borrowed("chat.completion"),
            created,
            model: Cow::Borrowed(&model),
            choices: choices
                .into_iter()
                .map(|(index, choice)| choice.into_chat(index))
                .collect(),
            usage: None,
            extra,
        }),
        CallKind::Completion => encode(&openai::TextCompletion {
            id: Cow::Borrowed(&id),
            object: Cow::Borrowed("text_completion"),
            created,
            model: Cow::Borrowed(&model),
            choices: choices
                .into_iter()
                .map(|(index, choice)| choice.into_text(index))
                .collect(),
            usage: None,
            extra,
        }),
        CallKind::Embedding
        | CallKind::ImageGeneration
        | CallKind::ImageEdit
        | CallKind::Moderation
        | CallKind::Transcription
        | CallKind::Translation
        | CallKind::Speech
        | CallKind::Rerank
        | CallKind::Responses => return None,
    };
    let usage = head
        .usage
        .and_then(|usage| Usage::deserialize(usage).ok())
        .unwrap_or_default();
    Some(Completion {
        body,
        usage,
        id: (!id.is_empty()).then_some(id),
        content_type: None,
    })
}

/// A stored complete response as the stream a streaming call gets: per choice a role chunk, its
/// reasoning, content and refusal in pieces (split before whitespace, a handful per field), its
/// tool calls (each opened with its id and name, then its arguments in pieces), its legacy
/// `function_call`, and a finish chunk (with the choice's `logprobs`, whole); then the usage chunk
/// (`choices: []`) when `include_usage`, then `Done`. Every chunk has the stored `id`, `created`,
/// `model` (and `system_fingerprint`, `service_tier` when stored); with `include_usage` the other
/// chunks say `"usage": null`, as OpenAI's do.
///
/// The chunks are written when this is called (a stored response is as large as the cache lets
/// it be, and one extra copy of it is cheaper than a stream that re-reads the body).
///
/// An embedding list (never streamed, so never asked for) or a body that is not an OpenAI
/// response replays as a stream of one `Error` item.
pub fn replay(kind: CallKind, stored: &Completion, include_usage: bool) -> ChunkStream {
    let items = match kind {
        CallKind::Embedding
        | CallKind::ImageGeneration
        | CallKind::ImageEdit
        | CallKind::Moderation
        | CallKind::Transcription
        | CallKind::Translation
        | CallKind::Speech
        | CallKind::Rerank
        | CallKind::Responses => None,
        kind => serde_json::from_slice::<EnvelopeIn>(&stored.body)
            .ok()
            .map(|body| Replay::new(kind, body, stored, include_usage).items()),
    };
    let items = items.unwrap_or_else(|| {
        vec![StreamItem::Error(format!(
            "a stored {} response cannot be replayed as a stream",
            kind.as_str()
        ))]
    });
    Box::pin(futures_util::stream::iter(items))
}

/// Wraps a stream so that, when it ends with `Done`, `on_complete` gets its chunks (a copy of each
/// `Chunk`'s bytes, which shares them); never when it ends with `Error` or is dropped early (a
/// cut stream is never stored), and not when the chunks passed `max_bytes` in total (it stops
/// collecting then, and still relays). Items pass through unchanged, as they come; `on_complete`
/// runs inside the poll that yields `Done`, just before it is relayed, so it should only hand the
/// chunks on (spawn the write), not wait.
///
/// `hide_usage`: the stream was asked for its usage chunk for the cache's sake only (the client did
/// not ask, `stream_options.include_usage`): the usage-only chunk is recorded but not relayed.
pub fn record(
    stream: ChunkStream,
    max_bytes: usize,
    hide_usage: bool,
    on_complete: impl FnOnce(Vec<Bytes>) + 'static,
) -> ChunkStream {
    Box::pin(Recorder {
        inner: stream,
        chunks: Vec::new(),
        bytes: 0,
        max_bytes,
        hide_usage,
        on_complete: Some(Box::new(on_complete)),
    })
}

/// Whether a chunk only carries usage (`"choices": []` with a `usage` object).
fn usage_only(chunk: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(default)]
        choices: Option<Vec<serde::de::IgnoredAny>>,
        #[serde(default)]
        usage: Option<Map<String, Value>>,
    }
    memchr::memmem::find(chunk, b"\"usage\"").is_some()
        && serde_json::from_slice::<Probe>(chunk)
            .is_ok_and(|p| p.usage.is_some() && p.choices.is_none_or(|c| c.is_empty()))
}

struct Recorder {
    inner: ChunkStream,
    chunks: Vec<Bytes>,
    bytes: usize,
    max_bytes: usize,
    hide_usage: bool,
    /// Taken when the stream completes; dropped (with the chunks) once it cannot.
    on_complete: Option<Box<dyn FnOnce(Vec<Bytes>)>>,
}

impl Recorder {
    fn give_up(&mut self) {
        self.on_complete = None;
        self.chunks = Vec::new();
    }
}

impl Stream for Recorder {
    type Item = StreamItem;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<StreamItem>> {
        let this = self.get_mut();
        loop {
            let polled = this.inner.as_mut().poll_next(cx);
            let mut hidden = false;
            if let Poll::Ready(Some(item)) = &polled {
                if let StreamItem::Chunk(chunk) = item {
                    hidden = this.hide_usage && usage_only(chunk);
                }
                if this.on_complete.is_some() {
                    match item {
                        StreamItem::Chunk(chunk) => {
                            this.bytes = this.bytes.saturating_add(chunk.len());
                            if this.bytes > this.max_bytes {
                                this.give_up();
                            } else {
                                this.chunks.push(chunk.clone());
                            }
                        }
                        StreamItem::Comment(_) => {}
                        StreamItem::Error(_) => this.give_up(),
                        StreamItem::Done => {
                            if let Some(on_complete) = this.on_complete.take() {
                                on_complete(std::mem::take(&mut this.chunks));
                            }
                        }
                    }
                }
            }
            if !hidden {
                return polled;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading: chunks and stored responses share these shapes (a chunk's `delta` is a partial
// `message`), read leniently: absent and `null` are the same.
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct EnvelopeIn {
    #[serde(flatten)]
    head: HeadIn,
    #[serde(default)]
    choices: Option<Vec<ChoiceIn>>,
}

#[derive(Deserialize)]
struct HeadIn {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    created: Option<u64>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    system_fingerprint: Option<Value>,
    #[serde(default)]
    service_tier: Option<Value>,
    #[serde(default)]
    usage: Option<Value>,
}

#[derive(Deserialize)]
struct ChoiceIn {
    #[serde(default)]
    index: u32,
    /// A chat chunk's.
    #[serde(default)]
    delta: Option<MessageIn>,
    /// A stored `chat.completion`'s.
    #[serde(default)]
    message: Option<MessageIn>,
    /// A `text_completion`'s (chunk or whole).
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    logprobs: Option<Value>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct MessageIn {
    #[serde(default)]
    role: Option<String>,
    #[serde(default, deserialize_with = "text_content")]
    content: Option<String>,
    /// `Some(None)`: `"refusal": null`, which OpenAI always sends and is kept as sent.
    #[serde(default, deserialize_with = "present")]
    refusal: Option<Option<String>>,
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    thinking_blocks: Option<Vec<Value>>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallIn>>,
    #[serde(default)]
    function_call: Option<FunctionIn>,
}

#[derive(Deserialize)]
struct ToolCallIn {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    function: Option<FunctionIn>,
}

#[derive(Deserialize)]
struct FunctionIn {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

/// A field that is there, `null` or not (`Some(None)` for `null`); `None` when absent.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A message's text: a string, or the `text` of its parts (how a few OpenAI-compatible providers
/// answer).
fn text_content<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::String(text)) => Some(text),
        Some(Value::Array(parts)) => Some(
            parts
                .iter()
                .filter_map(|part| part.get("text").and_then(Value::as_str))
                .collect(),
        ),
        _ => None,
    })
}

// ---------------------------------------------------------------------------------------------
// Assembling
// ---------------------------------------------------------------------------------------------

/// The envelope of a stream: the first of each field a chunk names (Azure's first chunk has an
/// empty id and model), the last usage.
#[derive(Default)]
struct Head {
    id: Option<String>,
    created: Option<u64>,
    model: Option<String>,
    system_fingerprint: Option<Value>,
    service_tier: Option<Value>,
    usage: Option<Value>,
}

impl Head {
    fn merge(&mut self, chunk: HeadIn) {
        let named = |s: &Option<String>| s.as_ref().is_some_and(|s| !s.is_empty());
        if self.id.is_none() && named(&chunk.id) {
            self.id = chunk.id;
        }
        if self.created.is_none() {
            self.created = chunk.created.filter(|c| *c > 0);
        }
        if self.model.is_none() && named(&chunk.model) {
            self.model = chunk.model;
        }
        let set = |field: &mut Option<Value>, value: Option<Value>| {
            if field.is_none() {
                *field = value.filter(|v| !v.is_null());
            }
        };
        set(&mut self.system_fingerprint, chunk.system_fingerprint);
        set(&mut self.service_tier, chunk.service_tier);
        if let Some(usage) = chunk.usage.filter(Value::is_object) {
            self.usage = Some(usage);
        }
    }
}

/// The envelope fields the wire types leave to `extra`, in OpenAI's order. `usage` is here too,
/// raw, so that no detail a provider sent is lost.
fn head_extra(
    usage: Option<Value>,
    service_tier: Option<Value>,
    system_fingerprint: Option<Value>,
) -> Map<String, Value> {
    let mut extra = Map::new();
    for (key, value) in [
        ("usage", usage),
        ("service_tier", service_tier),
        ("system_fingerprint", system_fingerprint),
    ] {
        if let Some(value) = value {
            extra.insert(key.to_owned(), value);
        }
    }
    extra
}

/// One choice, as its chunks have built it so far.
#[derive(Default)]
struct ChoiceAcc {
    role: Option<String>,
    content: Option<String>,
    /// `Some(None)`: the chunks said `"refusal": null` and nothing more.
    refusal: Option<Option<String>>,
    reasoning: Option<String>,
    thinking_blocks: Vec<Value>,
    tool_calls: BTreeMap<u32, ToolAcc>,
    function_call: Option<ToolAcc>,
    logprobs: Option<Value>,
    finish_reason: Option<String>,
}

#[derive(Default)]
struct ToolAcc {
    id: Option<String>,
    kind: Option<String>,
    name: Option<String>,
    arguments: String,
}

impl ToolAcc {
    fn merge(&mut self, function: Option<FunctionIn>) {
        if let Some(function) = function {
            if self.name.as_deref().is_none_or(str::is_empty) {
                self.name = function.name;
            }
            if let Some(arguments) = function.arguments {
                self.arguments.push_str(&arguments);
            }
        }
    }
}

fn append(to: &mut Option<String>, piece: Option<String>) {
    match (to.as_mut(), piece) {
        (Some(text), Some(piece)) => text.push_str(&piece),
        (None, piece) => *to = piece,
        (Some(_), None) => {}
    }
}

/// Log probabilities of one more piece: arrays are concatenated, anything else replaced.
fn merge_logprobs(to: &mut Option<Value>, piece: Option<Value>) {
    let Some(piece) = piece.filter(|p| !p.is_null()) else {
        return;
    };
    match (to.as_mut(), piece) {
        (Some(Value::Object(to)), Value::Object(piece)) => {
            for (key, value) in piece {
                match (to.get_mut(&key), value) {
                    (Some(Value::Array(to)), Value::Array(more)) => to.extend(more),
                    (Some(_), Value::Null) => {}
                    (_, value) => {
                        to.insert(key, value);
                    }
                }
            }
        }
        (_, piece) => *to = Some(piece),
    }
}

impl ChoiceAcc {
    fn merge(&mut self, choice: ChoiceIn) {
        if let Some(delta) = choice.delta.or(choice.message) {
            if self.role.is_none() {
                self.role = delta.role;
            }
            append(&mut self.content, delta.content);
            match (self.refusal.as_mut(), delta.refusal) {
                (Some(Some(text)), Some(Some(piece))) => text.push_str(&piece),
                (Some(_), Some(None)) | (_, None) => {}
                (_, refusal) => self.refusal = refusal,
            }
            append(&mut self.reasoning, delta.reasoning_content);
            self.thinking_blocks
                .extend(delta.thinking_blocks.unwrap_or_default());
            for call in delta.tool_calls.unwrap_or_default() {
                // Without an index (a few providers send whole calls), a call with an id is a new
                // one and a piece without is more of the last.
                let index = call.index.unwrap_or_else(|| {
                    let count = u32::try_from(self.tool_calls.len()).unwrap_or(u32::MAX);
                    if call.id.is_some() {
                        count
                    } else {
                        count.saturating_sub(1)
                    }
                });
                let acc = self.tool_calls.entry(index).or_default();
                if acc.id.as_deref().is_none_or(str::is_empty) {
                    acc.id = call.id;
                }
                if acc.kind.is_none() {
                    acc.kind = call.kind;
                }
                acc.merge(call.function);
            }
            if let Some(function) = delta.function_call {
                self.function_call
                    .get_or_insert_with(ToolAcc::default)
                    .merge(Some(function));
            }
        }
        append(&mut self.content, choice.text);
        merge_logprobs(&mut self.logprobs, choice.logprobs);
        if choice.finish_reason.is_some() {
            self.finish_reason = choice.finish_reason;
        }
    }

    fn into_chat(self, index: u32) -> openai::Choice<'static> {
        let calls = !self.tool_calls.is_empty() || self.function_call.is_some();
        // The opening delta's `content: ""` is no answer when the answer is calls or a refusal.
        let refused = matches!(self.refusal, Some(Some(_)));
        let content = self
            .content
            .filter(|text| !(text.is_empty() && (calls || refused)));
        let mut message = openai::AssistantMessage::new(content.map(Cow::Owned));
        if let Some(role) = self.role {
            message.role = Cow::Owned(role);
        }
        message.reasoning_content = self.reasoning.map(Cow::Owned);
        message.thinking_blocks = self.thinking_blocks;
        message.tool_calls = self
            .tool_calls
            .into_values()
            .map(|call| openai::ToolCall {
                index: None,
                id: call.id.map(Cow::Owned),
                kind: Some(Cow::Owned(call.kind.unwrap_or_else(|| "function".into()))),
                function: openai::FunctionCall {
                    name: call.name.map(Cow::Owned),
                    arguments: Cow::Owned(call.arguments),
                },
            })
            .collect();
        if let Some(refusal) = self.refusal {
            message
                .extra
                .insert("refusal".into(), refusal.map_or(Value::Null, Value::String));
        }
        if let Some(call) = self.function_call {
            let function = openai::FunctionCall {
                name: call.name.map(Cow::Owned),
                arguments: Cow::Owned(call.arguments),
            };
            if let Ok(function) = serde_json::to_value(function) {
                message.extra.insert("function_call".into(), function);
            }
        }
        openai::Choice {
            index,
            message,
            logprobs: self.logprobs,
            finish_reason: self.finish_reason.map(Cow::Owned),
        }
    }

    fn into_text(self, index: u32) -> openai::TextChoice<'static> {
        openai::TextChoice {
            text: Cow::Owned(self.content.unwrap_or_default()),
            index,
            logprobs: self.logprobs,
            finish_reason: self.finish_reason.map(Cow::Owned),
        }
    }
}

fn encode(value: &impl Serialize) -> Bytes {
    // Writing these types into a Vec cannot fail.
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

// ---------------------------------------------------------------------------------------------
// Replaying
// ---------------------------------------------------------------------------------------------

/// A chat chunk's choice. The wire's [`openai::ChunkChoice`] has no place for a `refusal`, a
/// legacy `function_call` or `thinking_blocks` in its delta, hence this one around its
/// [`openai::Delta`].
#[derive(Serialize)]
struct ChatChunkChoice<'a> {
    index: u32,
    delta: DeltaOut<'a>,
    logprobs: Option<&'a Value>,
    finish_reason: Option<&'a str>,
}

#[derive(Serialize, Default)]
struct DeltaOut<'a> {
    #[serde(flatten)]
    delta: openai::Delta<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refusal: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "no_blocks")]
    thinking_blocks: &'a [Value],
    #[serde(skip_serializing_if = "Option::is_none")]
    function_call: Option<openai::FunctionCall<'a>>,
}

impl<'a> ChatChunkChoice<'a> {
    /// A chunk choice that adds `delta`, without finishing.
    fn delta(index: u32, delta: DeltaOut<'a>) -> Self {
        Self {
            index,
            delta,
            logprobs: None,
            finish_reason: None,
        }
    }
}

fn no_blocks(blocks: &&[Value]) -> bool {
    blocks.is_empty()
}

impl<'a> From<openai::Delta<'a>> for DeltaOut<'a> {
    fn from(delta: openai::Delta<'a>) -> Self {
        Self {
            delta,
            ..Self::default()
        }
    }
}

/// A stored response being cut into chunks.
struct Replay {
    kind: CallKind,
    id: String,
    created: u64,
    model: String,
    /// `system_fingerprint` and `service_tier`, as stored: in every chunk.
    extra: Map<String, Value>,
    choices: Vec<ChoiceIn>,
    /// The usage chunk's `usage` (raw), when the client asked for one.
    usage: Option<Value>,
    items: Vec<StreamItem>,
}

impl Replay {
    fn new(kind: CallKind, body: EnvelopeIn, stored: &Completion, include_usage: bool) -> Self {
        let head = body.head;
        // A body without usage (none was stored) reports the typed counts beside it.
        let typed = match kind {
            CallKind::Chat => stored.usage.to_openai(),
            _ => openai::Usage::basic(stored.usage.prompt_tokens, stored.usage.completion_tokens),
        };
        let usage = include_usage.then(|| {
            head.usage
                .filter(Value::is_object)
                .or_else(|| serde_json::to_value(typed).ok())
                .unwrap_or(Value::Null)
        });
        Self {
            kind,
            id: head.id.or_else(|| stored.id.clone()).unwrap_or_default(),
            created: head.created.unwrap_or(0),
            model: head.model.unwrap_or_default(),
            extra: head_extra(None, head.service_tier, head.system_fingerprint),
            choices: body.choices.unwrap_or_default(),
            usage,
            items: Vec::new(),
        }
    }

    /// `usage` of a chunk with choices: `null` when the stream ends with a usage chunk, else
    /// absent.
    fn usage_placeholder(&self) -> Option<Option<openai::Usage>> {
        self.usage.as_ref().map(|_| None)
    }

    fn items(mut self) -> Vec<StreamItem> {
        let choices = std::mem::take(&mut self.choices);
        for choice in &choices {
            match self.kind {
                CallKind::Chat => self.chat_choice(choice),
                _ => self.text_choice(choice),
            }
        }
        if let Some(usage) = self.usage.take() {
            let mut extra = head_extra(Some(usage), None, None);
            extra.extend(self.extra.clone());
            let object = match self.kind {
                CallKind::Chat => "chat.completion.chunk",
                _ => "text_completion",
            };
            let chunk = encode(&openai::Completion::<'_, ChatChunkChoice<'_>> {
                id: Cow::Borrowed(&self.id),
                object: Cow::Borrowed(object),
                created: self.created,
                model: Cow::Borrowed(&self.model),
                choices: Vec::new(),
                usage: None,
                extra,
            });
            self.items.push(StreamItem::Chunk(chunk));
        }
        self.items.push(StreamItem::Done);
        self.items
    }

    /// One chunk of `object` holding `choice`, with the envelope every chunk repeats.
    fn chunk<C: Serialize>(&mut self, object: &'static str, choice: C) {
        let chunk = encode(&openai::Completion {
            id: Cow::Borrowed(&self.id),
            object: Cow::Borrowed(object),
            created: self.created,
            model: Cow::Borrowed(&self.model),
            choices: vec![choice],
            usage: self.usage_placeholder(),
            extra: self.extra.clone(),
        });
        self.items.push(StreamItem::Chunk(chunk));
    }

    fn chat_chunk(&mut self, choice: ChatChunkChoice<'_>) {
        self.chunk("chat.completion.chunk", choice);
    }

    fn chat_choice(&mut self, choice: &ChoiceIn) {
        let empty = MessageIn::default();
        let message = choice.message.as_ref().unwrap_or(&empty);
        let index = choice.index;
        let opening = openai::Delta {
            role: Some(Cow::Borrowed(
                message.role.as_deref().unwrap_or(openai::ASSISTANT),
            )),
            content: Some(message.content.as_ref().map(|_| Cow::Borrowed(""))),
            ..openai::Delta::default()
        };
        self.chat_chunk(ChatChunkChoice::delta(
            index,
            DeltaOut {
                delta: opening,
                refusal: message.refusal.as_ref().map(|_| None),
                thinking_blocks: message.thinking_blocks.as_deref().unwrap_or_default(),
                function_call: None,
            },
        ));
        for piece in pieces(message.reasoning_content.as_deref()) {
            self.chat_chunk(ChatChunkChoice::delta(
                index,
                openai::Delta::reasoning(piece).into(),
            ));
        }
        for piece in pieces(message.content.as_deref()) {
            self.chat_chunk(ChatChunkChoice::delta(
                index,
                openai::Delta::text(piece).into(),
            ));
        }
        let refusal = message.refusal.as_ref().and_then(Option::as_deref);
        for piece in pieces(refusal) {
            self.chat_chunk(ChatChunkChoice::delta(
                index,
                DeltaOut {
                    refusal: Some(Some(piece)),
                    ..DeltaOut::default()
                },
            ));
        }
        for (at, call) in message.tool_calls.iter().flatten().enumerate() {
            let at = u32::try_from(at).unwrap_or(u32::MAX);
            let function = call.function.as_ref();
            let opening = openai::ToolCall {
                index: Some(at),
                id: call.id.as_deref().map(Cow::Borrowed),
                kind: Some(Cow::Borrowed(call.kind.as_deref().unwrap_or("function"))),
                function: openai::FunctionCall {
                    name: function.and_then(|f| f.name.as_deref()).map(Cow::Borrowed),
                    arguments: Cow::Borrowed(""),
                },
            };
            self.chat_chunk(ChatChunkChoice::delta(
                index,
                openai::Delta::tool_call(opening).into(),
            ));
            for piece in pieces(function.and_then(|f| f.arguments.as_deref())) {
                let more = openai::ToolCall::arguments(at, piece);
                self.chat_chunk(ChatChunkChoice::delta(
                    index,
                    openai::Delta::tool_call(more).into(),
                ));
            }
        }
        if let Some(function) = &message.function_call {
            self.chat_chunk(ChatChunkChoice::delta(
                index,
                DeltaOut {
                    function_call: Some(openai::FunctionCall {
                        name: function.name.as_deref().map(Cow::Borrowed),
                        arguments: Cow::Borrowed(""),
                    }),
                    ..DeltaOut::default()
                },
            ));
            for piece in pieces(function.arguments.as_deref()) {
                self.chat_chunk(ChatChunkChoice::delta(
                    index,
                    DeltaOut {
                        function_call: Some(openai::FunctionCall {
                            name: None,
                            arguments: Cow::Borrowed(piece),
                        }),
                        ..DeltaOut::default()
                    },
                ));
            }
        }
        self.chat_chunk(ChatChunkChoice {
            index,
            delta: DeltaOut::default(),
            logprobs: choice.logprobs.as_ref().filter(|l| !l.is_null()),
            finish_reason: choice.finish_reason.as_deref(),
        });
    }

    fn text_chunk(&mut self, choice: openai::TextChoice<'_>) {
        self.chunk("text_completion", choice);
    }

    fn text_choice(&mut self, choice: &ChoiceIn) {
        for piece in pieces(choice.text.as_deref()) {
            self.text_chunk(openai::TextChoice {
                text: Cow::Borrowed(piece),
                index: choice.index,
                logprobs: None,
                finish_reason: None,
            });
        }
        self.text_chunk(openai::TextChoice {
            text: Cow::Borrowed(""),
            index: choice.index,
            logprobs: choice.logprobs.clone().filter(|l| !l.is_null()),
            finish_reason: choice.finish_reason.as_deref().map(Cow::Borrowed),
        });
    }
}

/// `text` in a handful of pieces that concatenate back to it: at most [`MAX_PIECES`] of at least
/// [`MIN_PIECE_BYTES`], each but the first starting at a whitespace (as tokens do), or mid-word
/// when a word runs longer than a piece. Nothing for no or empty text.
fn pieces(text: Option<&str>) -> Vec<&str> {
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return Vec::new();
    };
    let size = text.len().div_ceil(MAX_PIECES).max(MIN_PIECE_BYTES);
    let mut pieces = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = start + size;
        if end >= text.len() {
            pieces.push(&text[start..]);
            break;
        }
        while !text.is_char_boundary(end) {
            end += 1;
        }
        let window_end = (end + size).min(text.len());
        let mut window_end_boundary = window_end;
        while !text.is_char_boundary(window_end_boundary) {
            window_end_boundary += 1;
        }
        if let Some(at) = text[end..window_end_boundary].find(char::is_whitespace) {
            end += at;
        }
        pieces.push(&text[start..end]);
        start = end;
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// Every item of a stream that is always ready (these are), and whether it was fully read.
    fn drain(mut stream: ChunkStream, limit: usize) -> Vec<StreamItem> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut items = Vec::new();
        while items.len() < limit {
            match stream.as_mut().poll_next(&mut cx) {
                Poll::Ready(Some(item)) => items.push(item),
                Poll::Ready(None) => break,
                Poll::Pending => panic!("these streams are always ready"),
            }
        }
        items
    }

    fn chunks(items: &[StreamItem]) -> Vec<Bytes> {
        items
            .iter()
            .filter_map(|item| match item {
                StreamItem::Chunk(chunk) => Some(chunk.clone()),
                _ => None,
            })
            .collect()
    }

    fn stored(body: Value) -> Completion {
        let usage = body
            .get("usage")
            .cloned()
            .and_then(|u| Usage::deserialize(u).ok())
            .unwrap_or_default();
        Completion {
            body: Bytes::from(body.to_string()),
            usage,
            id: body["id"].as_str().map(str::to_owned),
            content_type: None,
        }
    }

    fn json_of(completion: &Completion) -> Value {
        serde_json::from_slice(&completion.body).expect("JSON body")
    }

    /// `stored` replayed, then assembled again.
    fn round_trip(kind: CallKind, stored: &Completion) -> (Vec<StreamItem>, Completion) {
        let items = drain(replay(kind, stored, true), usize::MAX);
        assert_eq!(items.last(), Some(&StreamItem::Done));
        let again = assemble(kind, &chunks(&items)).expect("assembles");
        (items, again)
    }

    fn usage() -> Value {
        json!({"prompt_tokens": 12, "completion_tokens": 40, "total_tokens": 52,
               "prompt_tokens_details": {"cached_tokens": 4, "audio_tokens": 0, "text_tokens": 8},
               "completion_tokens_details": {"reasoning_tokens": 3, "audio_tokens": 0}})
    }

    const LONG: &str = "The quick brown fox jumps over the lazy dog, and then it runs far away \
        into the deep green forest where nobody can find it again for a very long time. \
        Élan, naïveté and 日本語 text mix in too, so pieces must respect char boundaries.";

    /// The fields of a chat message that must survive a round trip.
    fn message_view(body: &Value) -> Vec<Value> {
        body["choices"]
            .as_array()
            .expect("choices")
            .iter()
            .map(|c| {
                let m = &c["message"];
                json!([
                    c["index"],
                    m["role"],
                    m["content"],
                    m["tool_calls"],
                    c["finish_reason"],
                    m.get("refusal"),
                    m.get("reasoning_content")
                ])
            })
            .collect()
    }

    #[test]
    fn chat_text_round_trips() {
        let x = stored(json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000,
            "model": "gpt-4o", "choices": [{"index": 0, "message": {"role": "assistant",
            "content": LONG, "refusal": null, "reasoning_content": "First, think. Then, answer."},
            "logprobs": null, "finish_reason": "stop"}],
            "usage": usage(), "service_tier": "default", "system_fingerprint": "fp_1"}));
        let (items, back) = round_trip(CallKind::Chat, &x);
        let (x_json, back_json) = (json_of(&x), json_of(&back));
        assert_eq!(message_view(&back_json), message_view(&x_json));
        assert_eq!(
            back_json["usage"],
            usage(),
            "usage kept raw, details included"
        );
        assert_eq!(back_json["system_fingerprint"], "fp_1");
        assert_eq!(back_json["service_tier"], "default");
        assert_eq!(back.usage, x.usage);
        assert_eq!(back.usage.cached_tokens, 4);
        assert_eq!(back.id.as_deref(), Some("chatcmpl-1"));
        // A handful of content chunks, not one per word or byte.
        let content_chunks = chunks(&items)
            .iter()
            .filter(|c| {
                let v: Value = serde_json::from_slice(c).unwrap();
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .is_some_and(|t| !t.is_empty())
            })
            .count();
        assert!(
            (2..=MAX_PIECES).contains(&content_chunks),
            "{content_chunks}"
        );
    }

    #[test]
    fn chat_with_two_parallel_tool_calls_round_trips() {
        let x = stored(json!({
            "id": "chatcmpl-2", "object": "chat.completion", "created": 5, "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null,
                "tool_calls": [
                    {"id": "call_a", "type": "function", "function": {"name": "get_weather",
                     "arguments": "{\"city\": \"Paris\", \"unit\": \"celsius\", \"days\": 3, \"details\": [\"wind\", \"rain\", \"humidity\", \"uv index\"]}"}},
                    {"id": "call_b", "type": "function", "function": {"name": "get_time",
                     "arguments": "{\"tz\": \"Europe/Paris\"}"}}]},
                "logprobs": null, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 30, "completion_tokens": 20, "total_tokens": 50}}));
        let (items, back) = round_trip(CallKind::Chat, &x);
        let back_json = json_of(&back);
        assert_eq!(message_view(&back_json), message_view(&json_of(&x)));
        assert!(back_json["choices"][0]["message"]["content"].is_null());
        assert_eq!(back_json["usage"]["total_tokens"], 50);
        // The second call opens with its own index, id and name.
        let openings: Vec<Value> = chunks(&items)
            .iter()
            .map(|c| serde_json::from_slice::<Value>(c).unwrap())
            .filter_map(|v| v["choices"][0]["delta"]["tool_calls"][0].get("id").cloned())
            .collect();
        assert_eq!(openings, vec![json!("call_a"), json!("call_b")]);
    }

    #[test]
    fn two_choices_round_trip() {
        let x = stored(json!({
            "id": "chatcmpl-3", "object": "chat.completion", "created": 5, "model": "m",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": LONG}, "logprobs": null, "finish_reason": "stop"},
                {"index": 1, "message": {"role": "assistant", "content": "Short one."}, "logprobs": null, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 9, "total_tokens": 12}}));
        let (_, back) = round_trip(CallKind::Chat, &x);
        let back_json = json_of(&back);
        assert_eq!(message_view(&back_json), message_view(&json_of(&x)));
        assert_eq!(back_json["choices"].as_array().map(Vec::len), Some(2));
        assert_eq!(back.usage.total_tokens, 12);
    }

    #[test]
    fn text_completion_round_trips() {
        let logprobs = json!({"tokens": ["The", " quick"], "token_logprobs": [-0.1, -0.2],
                              "top_logprobs": null, "text_offset": [0, 3]});
        let x = stored(json!({
            "id": "cmpl-1", "object": "text_completion", "created": 9, "model": "instruct",
            "choices": [
                {"text": LONG, "index": 0, "logprobs": logprobs, "finish_reason": "length"},
                {"text": "", "index": 1, "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 2, "completion_tokens": 7, "total_tokens": 9}}));
        let (items, back) = round_trip(CallKind::Completion, &x);
        let back_json = json_of(&back);
        assert_eq!(back_json["object"], "text_completion");
        assert_eq!(back_json["choices"], json_of(&x)["choices"]);
        assert_eq!(back_json["usage"], json_of(&x)["usage"]);
        for chunk in chunks(&items) {
            let v: Value = serde_json::from_slice(&chunk).unwrap();
            assert_eq!(v["object"], "text_completion");
        }
    }

    #[test]
    fn replayed_chunks_have_what_sdks_require() {
        let x = stored(json!({
            "id": "chatcmpl-4", "object": "chat.completion", "created": 7, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi there."},
                         "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
            "system_fingerprint": "fp"}));
        for include_usage in [false, true] {
            let items = drain(replay(CallKind::Chat, &x, include_usage), usize::MAX);
            assert_eq!(items.last(), Some(&StreamItem::Done));
            let events: Vec<Value> = chunks(&items)
                .iter()
                .map(|c| serde_json::from_slice(c).unwrap())
                .collect();
            let (last, others) = events.split_last().unwrap();
            for event in &events {
                assert_eq!(event["id"], "chatcmpl-4");
                assert_eq!(event["object"], "chat.completion.chunk");
                assert_eq!(event["created"], 7);
                assert_eq!(event["model"], "m");
                assert_eq!(event["system_fingerprint"], "fp");
            }
            for event in others {
                let choice = &event["choices"][0];
                assert_eq!(choice["index"], 0);
                assert!(choice["delta"].is_object());
                assert!(choice.get("finish_reason").is_some());
                assert_eq!(event.get("usage").is_some(), include_usage);
                assert!(event.get("usage").is_none_or(Value::is_null));
            }
            assert_eq!(
                others[0]["choices"][0]["delta"],
                json!({"role": "assistant", "content": ""})
            );
            if include_usage {
                assert_eq!(last["choices"], json!([]));
                assert_eq!(last["usage"]["total_tokens"], 3);
            } else {
                assert_eq!(last["choices"][0]["finish_reason"], "stop");
                assert!(last.get("usage").is_none());
            }
        }
    }

    #[test]
    fn a_body_without_usage_replays_the_typed_usage() {
        let mut x = stored(json!({
            "id": "cmpl-2", "object": "text_completion", "created": 7, "model": "m",
            "choices": [{"text": "Hi.", "index": 0, "logprobs": null, "finish_reason": "stop"}]}));
        x.usage = Usage {
            prompt_tokens: 5,
            completion_tokens: 2,
            total_tokens: 7,
            ..Usage::default()
        };
        let items = drain(replay(CallKind::Completion, &x, true), usize::MAX);
        let chunks = chunks(&items);
        let last: Value = serde_json::from_slice(chunks.last().expect("chunks")).unwrap();
        assert_eq!(
            last["usage"],
            json!({"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7})
        );
        assert_eq!(last["choices"], json!([]));
    }

    /// A stream as OpenAI sends it with `stream_options.include_usage`: every chunk says
    /// `"usage": null`, the last has `choices: []` and the usage. With a refusal field, logprobs
    /// in pieces, and a tool call whose arguments come in pieces.
    const OPENAI_STREAM: &[&str] = &[
        r#"{"id":"chatcmpl-B9","object":"chat.completion.chunk","created":1741000000,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_f9f4fb6dbf","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":{"content":[],"refusal":null},"finish_reason":null}],"usage":null}"#,
        r#"{"id":"chatcmpl-B9","object":"chat.completion.chunk","created":1741000000,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_f9f4fb6dbf","choices":[{"index":0,"delta":{"content":"Let me"},"logprobs":{"content":[{"token":"Let","logprob":-0.1,"bytes":[76,101,116],"top_logprobs":[]},{"token":" me","logprob":-0.2,"bytes":[32,109,101],"top_logprobs":[]}],"refusal":null},"finish_reason":null}],"usage":null}"#,
        r#"{"id":"chatcmpl-B9","object":"chat.completion.chunk","created":1741000000,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_f9f4fb6dbf","choices":[{"index":0,"delta":{"content":" check."},"logprobs":{"content":[{"token":" check.","logprob":-0.3,"bytes":[32,99,104,101,99,107,46],"top_logprobs":[]}],"refusal":null},"finish_reason":null}],"usage":null}"#,
        r#"{"id":"chatcmpl-B9","object":"chat.completion.chunk","created":1741000000,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_f9f4fb6dbf","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_Xy","type":"function","function":{"name":"lookup","arguments":""}}]},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        r#"{"id":"chatcmpl-B9","object":"chat.completion.chunk","created":1741000000,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_f9f4fb6dbf","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"q\":"}}]},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        r#"{"id":"chatcmpl-B9","object":"chat.completion.chunk","created":1741000000,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_f9f4fb6dbf","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":" \"tollgate\"}"}}]},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        r#"{"id":"chatcmpl-B9","object":"chat.completion.chunk","created":1741000000,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_f9f4fb6dbf","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}],"usage":null}"#,
        r#"{"id":"chatcmpl-B9","object":"chat.completion.chunk","created":1741000000,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_f9f4fb6dbf","choices":[],"usage":{"prompt_tokens":81,"completion_tokens":17,"total_tokens":98,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}"#,
    ];

    fn fixture(lines: &[&str]) -> Vec<Bytes> {
        lines
            .iter()
            .map(|line| Bytes::copy_from_slice(line.as_bytes()))
            .collect()
    }

    #[test]
    fn a_provider_stream_assembles_into_its_complete_response() {
        let assembled = assemble(CallKind::Chat, &fixture(OPENAI_STREAM)).expect("assembles");
        let usage = json!({"prompt_tokens": 81, "completion_tokens": 17, "total_tokens": 98,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}});
        assert_eq!(
            json_of(&assembled),
            json!({
                "id": "chatcmpl-B9", "object": "chat.completion", "created": 1_741_000_000,
                "model": "gpt-4o-2024-08-06",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Let me check.",
                    "tool_calls": [{"id": "call_Xy", "type": "function",
                        "function": {"name": "lookup", "arguments": "{\"q\": \"tollgate\"}"}}],
                    "refusal": null},
                    "logprobs": {"content": [
                        {"token": "Let", "logprob": -0.1, "bytes": [76, 101, 116], "top_logprobs": []},
                        {"token": " me", "logprob": -0.2, "bytes": [32, 109, 101], "top_logprobs": []},
                        {"token": " check.", "logprob": -0.3, "bytes": [32, 99, 104, 101, 99, 107, 46], "top_logprobs": []}],
                        "refusal": null},
                    "finish_reason": "tool_calls"}],
                "usage": usage,
                "service_tier": "default", "system_fingerprint": "fp_f9f4fb6dbf"})
        );
        assert_eq!(assembled.id.as_deref(), Some("chatcmpl-B9"));
        assert_eq!(
            (assembled.usage.prompt_tokens, assembled.usage.total_tokens),
            (81, 98)
        );
        // What was assembled replays and assembles again into the same bytes.
        let (_, again) = round_trip(CallKind::Chat, &assembled);
        assert_eq!(again.body, assembled.body);
    }

    #[test]
    fn a_text_completion_stream_assembles() {
        let lines = [
            r#"{"id":"cmpl-7","object":"text_completion","created":3,"choices":[{"text":"Hello","index":0,"logprobs":null,"finish_reason":null}],"model":"gpt-3.5-turbo-instruct"}"#,
            r#"{"id":"cmpl-7","object":"text_completion","created":3,"choices":[{"text":" world","index":0,"logprobs":null,"finish_reason":null}],"model":"gpt-3.5-turbo-instruct"}"#,
            r#"{"id":"cmpl-7","object":"text_completion","created":3,"choices":[{"text":"","index":0,"logprobs":null,"finish_reason":"stop"}],"model":"gpt-3.5-turbo-instruct"}"#,
            r#"{"id":"cmpl-7","object":"text_completion","created":3,"model":"gpt-3.5-turbo-instruct","choices":[],"usage":{"prompt_tokens":2,"completion_tokens":2,"total_tokens":4}}"#,
        ];
        let assembled = assemble(CallKind::Completion, &fixture(&lines)).expect("assembles");
        assert_eq!(
            json_of(&assembled),
            json!({"id": "cmpl-7", "object": "text_completion", "created": 3,
                   "model": "gpt-3.5-turbo-instruct",
                   "choices": [{"text": "Hello world", "index": 0, "logprobs": null, "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}})
        );
        assert_eq!(assembled.usage.total_tokens, 4);
    }

    #[test]
    fn reasoning_refusals_and_legacy_function_calls_are_merged() {
        let lines = [
            r#"{"id":"c","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","reasoning_content":"Hmm, "}}]}"#,
            r#"{"id":"c","created":1,"model":"m","choices":[{"index":0,"delta":{"reasoning_content":"no."}}]}"#,
            r#"{"id":"c","created":1,"model":"m","choices":[{"index":0,"delta":{"refusal":"I can't"}}]}"#,
            r#"{"id":"c","created":1,"model":"m","choices":[{"index":0,"delta":{"refusal":" help."}}]}"#,
            r#"{"id":"c","created":1,"model":"m","choices":[{"index":1,"delta":{"role":"assistant","content":null,"function_call":{"name":"f","arguments":"{\"a\""}}}]}"#,
            r#"{"id":"c","created":1,"model":"m","choices":[{"index":1,"delta":{"function_call":{"arguments":": 1}"}}}]}"#,
            r#"{"id":"c","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"},{"index":1,"delta":{},"finish_reason":"function_call"}]}"#,
        ];
        let assembled = assemble(CallKind::Chat, &fixture(&lines)).expect("assembles");
        let body = json_of(&assembled);
        let first = &body["choices"][0]["message"];
        assert_eq!(first["reasoning_content"], "Hmm, no.");
        assert_eq!(first["refusal"], "I can't help.");
        assert!(first["content"].is_null());
        let second = &body["choices"][1];
        assert_eq!(
            second["message"]["function_call"],
            json!({"name": "f", "arguments": "{\"a\": 1}"})
        );
        assert_eq!(second["finish_reason"], "function_call");
        assert!(body.get("usage").is_none(), "no usage chunk, no usage");
        let (_, again) = round_trip(CallKind::Chat, &assembled);
        let again = json_of(&again);
        assert_eq!(again["choices"], body["choices"]);
    }

    #[test]
    fn what_is_not_a_response_does_not_assemble() {
        let bytes = |s: &str| vec![Bytes::copy_from_slice(s.as_bytes())];
        assert!(assemble(CallKind::Chat, &[]).is_none());
        assert!(assemble(CallKind::Chat, &bytes("not json")).is_none());
        assert!(assemble(CallKind::Chat, &bytes(r#"{"id":"x","choices":[]}"#)).is_none());
        let mut cut = fixture(OPENAI_STREAM);
        cut.insert(2, Bytes::from_static(b"{\"id\":"));
        assert!(assemble(CallKind::Chat, &cut).is_none());
        assert!(assemble(CallKind::Embedding, &fixture(OPENAI_STREAM)).is_none());
    }

    #[test]
    fn an_embedding_or_a_foreign_body_replays_as_one_error() {
        let list = Completion {
            body: Bytes::from_static(b"{\"object\":\"list\",\"data\":[],\"model\":\"e\"}"),
            usage: Usage::default(),
            id: None,
            content_type: None,
        };
        let items = drain(replay(CallKind::Embedding, &list, false), usize::MAX);
        assert!(matches!(items.as_slice(), [StreamItem::Error(_)]));
        let garbage = Completion {
            body: Bytes::from_static(b"<html>"),
            ..list
        };
        let items = drain(replay(CallKind::Chat, &garbage, true), usize::MAX);
        assert!(matches!(items.as_slice(), [StreamItem::Error(_)]));
    }

    #[test]
    fn pieces_concatenate_back_and_stay_few() {
        let long = LONG.repeat(50);
        for text in [
            LONG,
            long.as_str(),
            "short",
            "x".repeat(500).as_str(),
            "日本語".repeat(100).as_str(),
        ] {
            let parts = pieces(Some(text));
            assert_eq!(parts.concat(), text);
            assert!(parts.len() <= MAX_PIECES, "{} pieces", parts.len());
            assert!(parts.iter().all(|p| !p.is_empty()));
        }
        assert_eq!(pieces(Some("short")), vec!["short"]);
        assert!(pieces(Some("")).is_empty());
        assert!(pieces(None).is_empty());
    }

    // ----- record -------------------------------------------------------------------------

    type Seen = Rc<RefCell<Option<Vec<Bytes>>>>;

    fn items(n: usize, end: Option<StreamItem>) -> Vec<StreamItem> {
        let mut items: Vec<StreamItem> = (0..n)
            .map(|i| StreamItem::Chunk(Bytes::from(format!("{{\"n\":{i}}}"))))
            .collect();
        items.insert(1, StreamItem::Comment(Bytes::from_static(b": ping")));
        items.extend(end);
        items
    }

    fn recorded(items: Vec<StreamItem>, max_bytes: usize) -> (ChunkStream, Seen) {
        let seen: Seen = Rc::default();
        let sink = seen.clone();
        let stream = record(
            Box::pin(futures_util::stream::iter(items)),
            max_bytes,
            false,
            move |chunks| *sink.borrow_mut() = Some(chunks),
        );
        (stream, seen)
    }

    #[test]
    fn a_usage_chunk_asked_for_the_cache_only_is_recorded_not_relayed() {
        let usage = Bytes::from_static(
            br#"{"id":"x","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#,
        );
        let text = Bytes::from_static(
            br#"{"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}],"usage":null}"#,
        );
        let sent = vec![
            StreamItem::Chunk(text.clone()),
            StreamItem::Chunk(usage.clone()),
            StreamItem::Done,
        ];
        for hide in [true, false] {
            let seen: Seen = Rc::default();
            let sink = seen.clone();
            let stream = record(
                Box::pin(futures_util::stream::iter(sent.clone())),
                usize::MAX,
                hide,
                move |chunks| *sink.borrow_mut() = Some(chunks),
            );
            let relayed = drain(stream, usize::MAX);
            let expected = if hide {
                vec![StreamItem::Chunk(text.clone()), StreamItem::Done]
            } else {
                sent.clone()
            };
            assert_eq!(relayed, expected);
            assert_eq!(
                seen.borrow().as_deref(),
                Some(&[text.clone(), usage.clone()][..])
            );
        }
    }

    #[test]
    fn a_completed_stream_is_handed_over_whole() {
        let sent = items(5, Some(StreamItem::Done));
        let (stream, seen) = recorded(sent.clone(), usize::MAX);
        let relayed = drain(stream, usize::MAX);
        assert_eq!(relayed, sent, "relayed unchanged");
        assert_eq!(seen.borrow().as_deref(), Some(chunks(&sent).as_slice()));
    }

    #[test]
    fn a_failed_stream_is_not_handed_over() {
        let sent = items(5, Some(StreamItem::Error("cut".into())));
        let (stream, seen) = recorded(sent.clone(), usize::MAX);
        assert_eq!(drain(stream, usize::MAX), sent);
        assert!(seen.borrow().is_none());
    }

    #[test]
    fn a_stream_dropped_midway_is_not_handed_over() {
        let (stream, seen) = recorded(items(5, Some(StreamItem::Done)), usize::MAX);
        let read = drain(stream, 3);
        assert_eq!(read.len(), 3);
        assert!(seen.borrow().is_none());
        // Nor one that ended without saying it completed.
        let (stream, seen) = recorded(items(5, None), usize::MAX);
        drain(stream, usize::MAX);
        assert!(seen.borrow().is_none());
    }

    #[test]
    fn a_stream_over_the_limit_is_relayed_but_not_handed_over() {
        let sent = items(50, Some(StreamItem::Done));
        let total: usize = chunks(&sent).iter().map(Bytes::len).sum();
        let (stream, seen) = recorded(sent.clone(), total - 1);
        assert_eq!(drain(stream, usize::MAX), sent);
        assert!(seen.borrow().is_none());
        // Exactly at the limit is kept.
        let (stream, seen) = recorded(sent.clone(), total);
        drain(stream, usize::MAX);
        assert_eq!(seen.borrow().as_ref().map(Vec::len), Some(50));
    }
}
