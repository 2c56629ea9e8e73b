#!/usr/bin/env python3
"""Derive Tollgate's bundled price table from LiteLLM's public model cost map.

Usage: python3 scripts/derive_price_table.py <model_prices_and_context_window.json> src/pricing/model_prices.json

Keeps, per model, only the fields Tollgate uses (provider, mode, context window, per-token and
per-second prices, cached/reasoning token prices, capability flags used for routing checks), sorted
by name, one model per line so diffs stay readable. Provenance: src/pricing/PROVENANCE.md.
"""
import json
import sys

FIELDS = [
    "litellm_provider",
    "mode",
    "max_input_tokens",
    "max_output_tokens",
    "max_tokens",
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
    "output_cost_per_reasoning_token",
    "input_cost_per_second",
    "output_cost_per_second",
    "input_cost_per_audio_token",
    "output_cost_per_audio_token",
    "input_cost_per_image",
    "output_cost_per_image",
    "input_cost_per_pixel",
    "output_cost_per_pixel",
    "input_cost_per_image_token",
    "output_cost_per_image_token",
    "input_cost_per_character",
    "input_cost_per_query",
    "supports_function_calling",
    "supports_vision",
    "supports_response_schema",
    "supports_prompt_caching",
    "supports_reasoning",
]


def main(src: str, dst: str) -> None:
    with open(src, encoding="utf-8") as f:
        data = json.load(f)
    out = {}
    for name, spec in sorted(data.items()):
        if name == "sample_spec" or not isinstance(spec, dict):
            continue
        kept = {}
        for field in FIELDS:
            value = spec.get(field)
            if value is None or isinstance(value, (dict, list)):
                continue
            if isinstance(value, str) and field not in ("litellm_provider", "mode"):
                continue
            kept[field] = value
        if "litellm_provider" in kept:
            out[name] = kept
    with open(dst, "w", encoding="utf-8") as f:
        f.write("{\n")
        items = list(out.items())
        for i, (name, spec) in enumerate(items):
            sep = "," if i + 1 < len(items) else ""
            f.write(f"{json.dumps(name)}:{json.dumps(spec, separators=(',', ':'))}{sep}\n")
        f.write("}\n")
    print(f"wrote {len(out)} models to {dst}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
