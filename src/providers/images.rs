//! Image generation on providers whose image APIs are not OpenAI's: Vertex AI Imagen
//! (`:predict`) and Bedrock's Stability and Amazon Titan / Nova Canvas models (`InvokeModel`).
//! The adapters read the OpenAI request once through [`ImageAsk`] and answer with
//! [`openai_images`]: OpenAI's images response, always as `b64_json` (these APIs return image
//! bytes, never links).

use bytes::Bytes;
use serde_json::{json, Value};

use super::TranslatedResponse;
use crate::error::GatewayError;
use crate::llm::LlmRequest;

/// Most images one request may ask for (OpenAI's limit; Imagen takes at most 4, Titan 5).
const MAX_IMAGES: u64 = 10;

/// What an OpenAI `/images/generations` request asks for, as the native adapters need it.
#[derive(Debug, PartialEq)]
pub struct ImageAsk<'a> {
    pub prompt: &'a str,
    pub n: u64,
    /// `size` as width and height (`None` for absent or `auto`).
    pub size: Option<(u32, u32)>,
    /// `quality` (`hd`, `high`… → Titan's `premium`).
    pub quality: Option<&'a str>,
    /// Provider fields OpenAI has no name for, passed as given: `negative_prompt`, `seed`.
    pub negative_prompt: Option<&'a str>,
    pub seed: Option<u64>,
}

impl<'a> ImageAsk<'a> {
    pub fn of(req: &'a LlmRequest) -> Result<Self, GatewayError> {
        let body = &req.body;
        let prompt = body
            .get("prompt")
            .and_then(Value::as_str)
            .filter(|p| !p.trim().is_empty())
            .ok_or_else(|| {
                GatewayError::bad_param("prompt", "prompt must be a non-empty string")
            })?;
        let n = match body.get("n") {
            None | Some(Value::Null) => 1,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=MAX_IMAGES).contains(n))
                .ok_or_else(|| {
                    GatewayError::bad_param("n", format!("n must be from 1 to {MAX_IMAGES}"))
                })?,
        };
        let size = match body.get("size").and_then(Value::as_str) {
            None | Some("auto") => None,
            Some(s) => Some(
                s.split_once('x')
                    .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
                    .filter(|(w, h): &(u32, u32)| *w > 0 && *h > 0)
                    .ok_or_else(|| {
                        GatewayError::bad_param(
                            "size",
                            format!("size must be WIDTHxHEIGHT or auto, not '{s}'"),
                        )
                    })?,
            ),
        };
        Ok(Self {
            prompt,
            n,
            size,
            quality: body.get("quality").and_then(Value::as_str),
            negative_prompt: body.get("negative_prompt").and_then(Value::as_str),
            seed: body.get("seed").and_then(Value::as_u64),
        })
    }

    /// The size as an aspect ratio in lowest terms (`1792x1024` → `7:4`, `1024x1024` → `1:1`).
    pub fn aspect_ratio(&self) -> Option<String> {
        let (w, h) = self.size?;
        let g = gcd(w, h);
        Some(format!("{}:{}", w / g, h / g))
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// OpenAI's images response for base64 images (no usage: these providers bill per image).
pub fn openai_images(images: Vec<String>) -> Result<TranslatedResponse, GatewayError> {
    if images.is_empty() {
        return Err(super::invalid_body("the provider returned no image"));
    }
    let data: Vec<Value> = images
        .into_iter()
        .map(|b64| json!({"b64_json": b64}))
        .collect();
    let out = json!({"created": super::now_secs(), "data": data});
    Ok(TranslatedResponse {
        body: Bytes::from(out.to_string()),
        usage: None,
        response_id: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::CallKind;
    use crate::providers::testing::request;

    #[test]
    fn an_openai_image_request_is_read_once_for_the_native_apis() {
        let req = request(
            CallKind::ImageGeneration,
            json!({"model": "m", "prompt": "a fox", "n": 2, "size": "1792x1024", "quality": "hd", "seed": 7}),
        );
        let ask = ImageAsk::of(&req).unwrap();
        assert_eq!(ask.n, 2);
        assert_eq!(ask.size, Some((1792, 1024)));
        assert_eq!(ask.aspect_ratio().as_deref(), Some("7:4"));
        assert_eq!(ask.seed, Some(7));
        let square = request(
            CallKind::ImageGeneration,
            json!({"model": "m", "prompt": "x", "size": "1024x1024"}),
        );
        assert_eq!(
            ImageAsk::of(&square).unwrap().aspect_ratio().as_deref(),
            Some("1:1")
        );
        // (An empty prompt or n=0 is refused earlier, when the request is parsed.)
        for bad in [
            json!({"model": "m", "prompt": "x", "n": 11}),
            json!({"model": "m", "prompt": "x", "size": "big"}),
        ] {
            assert!(ImageAsk::of(&request(CallKind::ImageGeneration, bad)).is_err());
        }
        let out = openai_images(vec!["AAAA".into()]).unwrap();
        let v: Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(v["data"][0]["b64_json"], "AAAA");
        assert!(openai_images(vec![]).is_err());
    }
}
