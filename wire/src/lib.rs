//! Wire pieces that both the gateway and its mock provider (`tollgate-mock`) speak, kept once:
//!
//! * [`anthropic`]: Anthropic's HTTP status ↔ `error.type` table;
//! * [`openai`]: OpenAI's response shapes (`chat.completion`, its chunks, `text_completion`, the
//!   embedding list), which the gateway's adapters write and the mock answers with;
//! * [`eventstream`]: the AWS event-stream binary framing of Bedrock's ConverseStream;
//! * [`sigv4`]: AWS Signature Version 4 for Bedrock requests (signing and checking);
//! * [`time`]: timestamps as the API shows them (ISO 8601 in UTC, unix milliseconds).

pub mod anthropic;
pub mod eventstream;
pub mod openai;
pub mod sigv4;
pub mod time;
