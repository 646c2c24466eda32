// Package gateway is the worker's OpenAI-compatible inference API: an
// http.Handler serving /v1/chat/completions, /v1/completions (whole JSON
// answers or server-sent events), /v1/models, /metrics and /healthz, in
// front of one of two backends:
//
//   - the built-in engine (guest/engine): the gateway decodes the request,
//     calls Engine.Generate and writes OpenAI's response objects and
//     stream chunks itself, counting usage from engine.Result;
//   - an OpenAI-compatible upstream on loopback (vLLM, SGLang, llama.cpp
//     server): a reverse proxy that relays bodies byte for byte. Its one
//     edit is to streaming requests, where it sets
//     stream_options.include_usage so that the upstream always reports the
//     tokens, and removes the usage-only chunk again when the client did
//     not ask for it. Token counts are the upstream's own usage object;
//     when there is none the request is recorded as unaccounted, never
//     estimated.
//
// Both backends share the front: method (405), Content-Type (415), the
// concurrency limit (429 with Retry-After), body size (413), the envelope
// check (a JSON object; model, stream, stream_options, max_tokens typed and
// not repeated), the served-model check (404 model_not_found) and the
// max_tokens bound. Errors are OpenAI's {"error":{"message","type","param",
// "code"}}. The request context reaches the engine or the upstream, so a
// client that goes away stops the generation.
//
// Every completion request yields one Record for the Recorder (the
// worker's receipts): ID, model, usage, times, status, whether it was
// cancelled, and an HMAC commitment to the request body. Nothing here logs
// request or response content.
package gateway
