//! Deployment regions, for region routing (LiteLLM's `allowed_model_region`).
//!
//! A deployment's region is `litellm_params.region_name` when set; else the region the provider
//! is called in, where the deployment states one: Bedrock's AWS region (`aws_region_name`, else
//! `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`, the region the adapter signs for and
//! calls) and Vertex AI's location (`vertex_location`, else `VERTEXAI_LOCATION` /
//! `VERTEX_LOCATION`, else `us-central1`). Other deployments have no known region.
//!
//! Regions are grouped as LiteLLM groups them: `eu` and `us`, the two values an end user's
//! `allowed_model_region` takes. `eu-west-3` (AWS), `europe-west4` (Google Cloud),
//! `swedencentral` (Azure) are `eu`; `us-east-1`, `us-central1`, `eastus2` are `us`. A region in
//! neither group (`ap-northeast-1`, `global`) keeps its own name: it is shown, and never serves a
//! region-restricted request. So is a deployment with no known region (LiteLLM's behaviour too).

/// A key's or end user's `allowed_model_region` values.
pub const EU: &str = "eu";
pub const US: &str = "us";
pub const ALLOWED: &[&str] = &[EU, US];

/// Azure region names (no hyphen) in Europe, as LiteLLM's Azure list (`europe`, `sweden`,
/// `switzerland`, `france`, `uk`) plus the other European Azure regions.
const AZURE_EU_PREFIXES: &[&str] = &[
    "sweden",
    "switzerland",
    "france",
    "uk",
    "germany",
    "norway",
    "poland",
    "italy",
    "spain",
    "austria",
    "belgium",
    "denmark",
    "finland",
    "greece",
];

/// The group (`eu` or `us`) a region belongs to; `None` for a region in neither.
pub fn group(region: &str) -> Option<&'static str> {
    let r = region.trim().to_ascii_lowercase();
    if r == EU || r.starts_with("eu-") || r.starts_with("europe-") {
        // AWS (`eu-west-3`, `eu-central-1`), IBM watsonx (`eu-de`), Google Cloud (`europe-west4`).
        return Some(EU);
    }
    if r == US || r.starts_with("us-") {
        // AWS (`us-east-1`, `us-gov-west-1`), Google Cloud (`us-central1`), watsonx (`us-south`).
        return Some(US);
    }
    if r.contains('-') || r.is_empty() {
        return None;
    }
    // Azure names: `westeurope`, `swedencentral`, `eastus2`, `usgovvirginia`.
    if r.contains("europe") || AZURE_EU_PREFIXES.iter().any(|p| r.starts_with(p)) {
        return Some(EU);
    }
    let bare = r.trim_end_matches(|c: char| c.is_ascii_digit());
    if bare.ends_with("us") || r.starts_with("usgov") || r.starts_with("usdod") {
        return Some(US);
    }
    None
}

/// A region as routing and the `x-litellm-model-region` header know it: its group when it has
/// one, else its own name (lowercase); `None` for an empty name.
pub fn normalize(region: &str) -> Option<String> {
    let trimmed = region.trim();
    if trimmed.is_empty() {
        return None;
    }
    Some(
        group(trimmed)
            .map(str::to_string)
            .unwrap_or_else(|| trimmed.to_ascii_lowercase()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_grouped_as_litellm_groups_them() {
        // LiteLLM's own lists: Bedrock, Vertex AI, Azure, watsonx.
        for eu in [
            "eu",
            "EU",
            "eu-west-1",
            "eu-west-2",
            "eu-west-3",
            "eu-central-1",
            "eu-north-1",
            "europe-west1",
            "europe-west4",
            "europe-central2",
            "europe-southwest1",
            "westeurope",
            "northeurope",
            "swedencentral",
            "switzerlandnorth",
            "francecentral",
            "uksouth",
            "germanywestcentral",
            "eu-de",
            "eu-gb",
        ] {
            assert_eq!(group(eu), Some(EU), "{eu}");
        }
        for us in [
            "us",
            "us-east-1",
            "us-east-2",
            "us-west-2",
            "us-gov-west-1",
            "us-central1",
            "us-east4",
            "eastus",
            "eastus2",
            "westus3",
            "northcentralus",
            "southcentralus",
            "usgovvirginia",
            "us-south",
        ] {
            assert_eq!(group(us), Some(US), "{us}");
        }
        for neither in [
            "ap-northeast-1",
            "ap-south-1",
            "ca-central-1",
            "sa-east-1",
            "asia-northeast1",
            "australiaeast",
            "japaneast",
            "global",
            "",
            "mars",
        ] {
            assert_eq!(group(neither), None, "{neither}");
        }
    }

    #[test]
    fn a_region_is_shown_as_its_group_else_as_itself() {
        assert_eq!(normalize("eu-west-3").as_deref(), Some("eu"));
        assert_eq!(normalize(" EU ").as_deref(), Some("eu"));
        assert_eq!(normalize("us-east-1").as_deref(), Some("us"));
        assert_eq!(
            normalize("AP-Northeast-1").as_deref(),
            Some("ap-northeast-1")
        );
        assert_eq!(normalize("   "), None);
    }
}
