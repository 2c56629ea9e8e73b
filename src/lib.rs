//! Tollgate: an LLM gateway with LiteLLM's config, API and CLI.
//!
//! Where things are:
//! * [`pipeline`]: the request pipeline, documented step by step (start here);
//! * [`http`]: routes and handlers; [`auth`]: who may call what;
//! * [`config`]: LiteLLM's `config.yaml`; [`cli`]: the command line; [`server`]: start-up;
//! * [`llm`]: the internal request/response model; [`providers`]: one adapter per provider;
//!   [`messages_api`]: Anthropic's Messages API translated to and from that model;
//! * [`routing`]: strategy, retries, fallbacks (`router_settings`);
//! * [`passthrough`]: provider-native requests relayed (`/openai/*`, `/anthropic/*`…,
//!   `pass_through_endpoints`);
//! * [`deployment`]: a `model_list` entry resolved; the router and deployment actors live in the
//!   `tollgate-actors` crate (`actors/`);
//! * [`upstream`]: the awc client; [`sse`]: stream relaying; the built-in mock provider is the
//!   `tollgate-mock` crate (`mock/`), and the wire code it shares with the gateway (event-stream
//!   framing, SigV4, [`time`]) is the `tollgate-wire` crate (`wire/`).

pub mod audio;
pub mod auth;
pub mod caching;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod config_bucket;
pub mod config_keys;
pub mod crypto;
pub mod database;
pub mod deployment;
pub mod error;
pub mod fd_limit;
pub mod files;
pub mod http;
pub mod import_litellm;
pub mod keys;
pub mod limits;
pub mod llm;
pub mod logging;
pub mod management;
pub mod messages_api;
pub mod mock_response;
pub mod models_sync;
pub mod multipart;
pub mod observability;
pub mod outcome;
pub mod passthrough;
pub mod pipeline;
pub mod pricing;
pub mod providers;
pub mod region;
pub mod render;
pub mod rerank;
pub mod responses_api;
pub mod routing;
pub mod runtime_settings;
pub mod secret;
pub mod secret_manager;
pub mod server;
pub mod spend;
pub mod sse;
pub mod state;
pub mod store;
pub mod tokens;
pub use tollgate_wire::time;
pub mod outbound;
pub mod ui_session;
pub mod upstream;
