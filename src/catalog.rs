//! What the gateway tells a caller about the models it may use: `/model_group/info` (one entry
//! per model group, LiteLLM's `ModelGroupInfo`) and `/v2/model/info` (deployments, paged). The
//! handlers (`src/http/models.rs`) decide which names and deployments the caller may see; this
//! module only describes them.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use crate::deployment::Deployment;
use crate::state::AppState;

/// The `supports_*` flags of a model group (true when any of its deployments supports it).
const FLAGS: &[&str] = &[
    "supports_parallel_function_calling",
    "supports_vision",
    "supports_web_search",
    "supports_reasoning",
    "supports_function_calling",
    "supports_response_schema",
    "supports_prompt_caching",
];

/// The larger of two optional numbers.
fn max_of(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}

fn num(info: &Map<String, Value>, key: &str) -> Option<f64> {
    info.get(key).and_then(|v| {
        v.as_f64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    })
}

/// One deployment's `supports_*` flag: its `model_info`, else the model table.
fn flag(d: &Deployment, info: &Map<String, Value>, name: &str) -> bool {
    if let Some(v) = info.get(name).and_then(Value::as_bool) {
        return v;
    }
    let Some(p) = d.price_entry() else {
        return false;
    };
    match name {
        "supports_vision" => p.supports_vision,
        "supports_reasoning" => p.supports_reasoning,
        "supports_function_calling" => p.supports_function_calling,
        "supports_response_schema" => p.supports_response_schema,
        "supports_prompt_caching" => p.supports_prompt_caching,
        _ => None,
    }
    .unwrap_or(false)
}

/// LiteLLM's `ModelGroupInfo` for the group `name`, over its deployments: providers, the largest
/// context window and output limit, the highest prices (what a call may cost at most), the summed
/// `tpm` and `rpm`, a flag set when any deployment supports it, and the union of the OpenAI
/// parameters the providers accept.
pub fn group_info(name: &str, deployments: &[&Deployment]) -> Value {
    let mut providers: Vec<String> = Vec::new();
    let (mut max_in, mut max_out, mut cost_in, mut cost_out) = (None, None, None, None);
    let (mut tpm, mut rpm): (Option<u64>, Option<u64>) = (None, None);
    let mut mode: Option<String> = None;
    let mut flags = vec![false; FLAGS.len()];
    let mut params: BTreeSet<&'static str> = BTreeSet::new();
    for d in deployments {
        let info = match d.info() {
            Value::Object(mut o) => match o.remove("model_info") {
                Some(Value::Object(i)) => i,
                _ => Map::new(),
            },
            _ => Map::new(),
        };
        let provider = d.provider_name().to_string();
        if !providers.contains(&provider) {
            providers.push(provider);
        }
        max_in = max_of(max_in, num(&info, "max_input_tokens"));
        max_out = max_of(max_out, num(&info, "max_output_tokens"));
        cost_in = max_of(cost_in, num(&info, "input_cost_per_token"));
        cost_out = max_of(cost_out, num(&info, "output_cost_per_token"));
        if let Some(t) = d.tpm {
            tpm = Some(tpm.unwrap_or(0) + t);
        }
        if let Some(r) = d.rpm {
            rpm = Some(rpm.unwrap_or(0) + r);
        }
        if mode.is_none() {
            mode = info.get("mode").and_then(Value::as_str).map(str::to_string);
        }
        for (i, f) in FLAGS.iter().enumerate() {
            flags[i] |= flag(d, &info, f);
        }
        params.extend(d.supported_openai_params());
    }
    let mut out = json!({
        "model_group": name,
        "providers": providers,
        "max_input_tokens": max_in,
        "max_output_tokens": max_out,
        "input_cost_per_token": cost_in,
        "output_cost_per_token": cost_out,
        "mode": mode.unwrap_or_else(|| "chat".into()),
        "tpm": tpm,
        "rpm": rpm,
    });
    let obj = out.as_object_mut().expect("an object");
    for (f, v) in FLAGS.iter().zip(flags) {
        obj.insert((*f).into(), Value::Bool(v));
    }
    obj.insert(
        "supported_openai_params".into(),
        json!(params.into_iter().collect::<Vec<_>>()),
    );
    obj.insert("configurable_clientside_auth_params".into(), Value::Null);
    obj.insert("is_public_model_group".into(), Value::Bool(false));
    out
}

/// `/model_group/info`'s entries for the visible `names` (model groups and `model_group_alias`
/// names, each described by the deployments of the group it names), or only `only`.
pub fn groups_info(state: &AppState, names: &BTreeSet<String>, only: Option<&str>) -> Vec<Value> {
    let snapshot = state.router.snapshot();
    names
        .iter()
        .filter(|n| only.is_none_or(|o| o == n.as_str()))
        .filter_map(|name| {
            let group = state
                .aliases
                .get(name)
                .map_or(name.as_str(), |a| a.target.as_str());
            let g = snapshot.group(group)?;
            let deployments: Vec<&Deployment> =
                g.deployments.iter().map(|h| h.upstream.as_ref()).collect();
            Some(group_info(name, &deployments))
        })
        .collect()
}

/// LiteLLM's paging of `/v2/model/info`: `page` from 1, `size` entries a page.
pub struct Page {
    pub page: usize,
    pub size: usize,
}

impl Page {
    pub const DEFAULT_SIZE: usize = 50;

    /// One page of `items`, with LiteLLM's `total_count`, `current_page`, `total_pages` and
    /// `size`.
    pub fn of(&self, items: Vec<Value>) -> Value {
        let total = items.len();
        let size = self.size.max(1);
        let page = self.page.max(1);
        let data: Vec<Value> = items
            .into_iter()
            .skip((page - 1).saturating_mul(size))
            .take(size)
            .collect();
        json!({
            "data": data,
            "total_count": total,
            "current_page": page,
            "total_pages": total.div_ceil(size),
            "size": size,
        })
    }
}
