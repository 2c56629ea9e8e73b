-- Responses returned by /v1/responses (OpenAI's Responses API), kept unless the request said
-- `store: false`: GET/DELETE /v1/responses/{id}, its input items, and `previous_response_id`
-- (the conversation is rebuilt from here for every provider). `owner` is the hash of the key
-- that created it (NULL: the master key); `input_items` the conversation it was given and
-- `response` the Responses object, both JSON text. Times are unix milliseconds.
CREATE TABLE stored_responses (
    id TEXT PRIMARY KEY NOT NULL,
    owner TEXT,
    model TEXT NOT NULL,
    input_items TEXT NOT NULL,
    response TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX stored_responses_owner ON stored_responses (owner);
