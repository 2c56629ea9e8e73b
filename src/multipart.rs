//! `multipart/form-data` bodies (`/images/edits`, `/audio/transcriptions`, `/audio/translations`): read into the internal model (text fields as a
//! JSON object, files as [`Upload`]s) and written again for the provider.

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use serde_json::{Map, Value};

use crate::error::GatewayError;
use crate::llm::Upload;

/// Text fields that are always strings, whatever they look like (`prompt: "42"` stays text).
const TEXT_FIELDS: &[&str] = &[
    "prompt",
    "model",
    "user",
    "size",
    "quality",
    "background",
    "output_format",
    "input_fidelity",
    "response_format",
    "mock_response",
    "language",
];

/// Most parts (fields and files) in one form.
const MAX_PARTS: usize = 256;

/// A form already read whole (within the request-size limit): its text fields and its files.
/// Numbers, booleans, lists and objects in text fields other than [`TEXT_FIELDS`] (`n: "2"`,
/// `metadata: "{...}"`, `fallbacks: "[...]"`) are read as JSON, as the JSON routes would get them.
pub async fn parse(
    headers: &actix_web::http::header::HeaderMap,
    body: Bytes,
) -> Result<(Map<String, Value>, Vec<Upload>), GatewayError> {
    let stream =
        futures_util::stream::once(async move { Ok::<_, actix_web::error::PayloadError>(body) });
    let mut form = actix_multipart::Multipart::new(headers, stream);
    let bad = |e: actix_multipart::MultipartError| {
        GatewayError::bad_request(format!("Malformed multipart/form-data body: {e}"))
    };
    let (mut fields, mut uploads) = (Map::new(), Vec::new());
    let mut parts = 0;
    while let Some(field) = form.next().await {
        let mut field = field.map_err(bad)?;
        parts += 1;
        if parts > MAX_PARTS {
            return Err(GatewayError::bad_request(format!(
                "A multipart/form-data body may have at most {MAX_PARTS} parts."
            )));
        }
        let name = field.name().unwrap_or_default().to_string();
        if name.is_empty() {
            return Err(GatewayError::bad_request(
                "Every part of a multipart/form-data body needs a name.",
            ));
        }
        let filename = field
            .content_disposition()
            .and_then(|cd| cd.get_filename())
            .map(str::to_string);
        let content_type = field.content_type().map(|m| m.to_string());
        let mut data = BytesMut::new();
        while let Some(chunk) = field.next().await {
            data.extend_from_slice(&chunk.map_err(bad)?);
        }
        if filename.is_some() {
            uploads.push(Upload {
                field: name,
                filename,
                content_type,
                data: data.freeze(),
            });
            continue;
        }
        let text = String::from_utf8(data.to_vec()).map_err(|_| {
            GatewayError::bad_param(&name, format!("Form field '{name}' is not valid UTF-8."))
        })?;
        let value = if TEXT_FIELDS.contains(&name.as_str()) {
            Value::String(text)
        } else {
            match serde_json::from_str::<Value>(&text) {
                Ok(v) if !v.is_string() => v,
                _ => Value::String(text),
            }
        };
        fields.insert(name, value);
    }
    Ok((fields, uploads))
}

/// A form for the provider: the text fields (strings as they are, other values as JSON), then the
/// files. Returns the `content-type` (with its boundary) and the body.
pub fn encode<'a>(
    fields: impl IntoIterator<Item = (&'a str, &'a Value)>,
    uploads: &[Upload],
) -> (String, Bytes) {
    let boundary = format!("tollgate-{}", uuid::Uuid::new_v4().simple());
    let mut out = BytesMut::new();
    let head = |out: &mut BytesMut, name: &str, filename: Option<&str>| {
        out.put_slice(format!("--{boundary}\r\n").as_bytes());
        out.put_slice(b"Content-Disposition: form-data; name=\"");
        out.put_slice(quoted(name).as_bytes());
        out.put_slice(b"\"");
        if let Some(f) = filename {
            out.put_slice(b"; filename=\"");
            out.put_slice(quoted(f).as_bytes());
            out.put_slice(b"\"");
        }
        out.put_slice(b"\r\n");
    };
    for (name, value) in fields {
        if value.is_null() {
            continue;
        }
        head(&mut out, name, None);
        out.put_slice(b"\r\n");
        match value {
            Value::String(s) => out.put_slice(s.as_bytes()),
            other => out.put_slice(other.to_string().as_bytes()),
        }
        out.put_slice(b"\r\n");
    }
    for upload in uploads {
        head(
            &mut out,
            &upload.field,
            Some(upload.filename.as_deref().unwrap_or("file")),
        );
        let content_type = upload
            .content_type
            .as_deref()
            .unwrap_or("application/octet-stream");
        out.put_slice(format!("Content-Type: {content_type}\r\n\r\n").as_bytes());
        out.put_slice(&upload.data);
        out.put_slice(b"\r\n");
    }
    out.put_slice(format!("--{boundary}--\r\n").as_bytes());
    (
        format!("multipart/form-data; boundary={boundary}"),
        out.freeze(),
    )
}

/// A name or file name inside a quoted header parameter: quotes and line breaks escaped.
fn quoted(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderMap, HeaderValue, CONTENT_TYPE};

    #[actix_rt::test]
    async fn a_form_round_trips_through_encode_and_parse() {
        let png = Bytes::from_static(b"\x89PNG\r\n\x1a\n--not-a-boundary\r\n\0binary");
        let uploads = vec![Upload {
            field: "image[]".into(),
            filename: Some("cat \"1\".png".into()),
            content_type: Some("image/png".into()),
            data: png.clone(),
        }];
        let prompt = Value::String("42".into());
        let n = Value::from(2);
        let meta = serde_json::json!({"tags": ["a"]});
        let (content_type, body) = encode(
            [("prompt", &prompt), ("n", &n), ("metadata", &meta)],
            &uploads,
        );
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_str(&content_type).expect("header"),
        );
        let (fields, files) = parse(&headers, body).await.expect("parses");
        assert_eq!(fields["prompt"], "42");
        assert_eq!(fields["n"], 2);
        assert_eq!(fields["metadata"], meta);
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].field, "image[]");
        assert_eq!(files[0].content_type.as_deref(), Some("image/png"));
        assert_eq!(files[0].data, png);
    }

    #[actix_rt::test]
    async fn a_body_that_is_not_a_form_is_a_400() {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("multipart/form-data; boundary=x"),
        );
        let err = parse(&headers, Bytes::from_static(b"garbage"))
            .await
            .expect_err("malformed");
        assert_eq!(actix_web::ResponseError::status_code(&err).as_u16(), 400);
    }
}
