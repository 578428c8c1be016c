//! What each ingress endpoint is, and decoding its body into what the pipeline needs.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use moat_core::{Dialect, ErrorCode};
use moat_upstream::DeploymentSpec;
use moat_wire::anthropic::{self, AnthropicRequest};
use moat_wire::openai::{self, OpenAiRequest, RequestError, ResponseView};

use crate::error::ApiError;

/// A model endpoint clients call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
    Messages,
    Responses,
}

impl Endpoint {
    /// The dialect the endpoint speaks, to clients and (passed through) to upstreams.
    pub(crate) fn dialect(self) -> Dialect {
        match self {
            Endpoint::ChatCompletions | Endpoint::Completions | Endpoint::Embeddings | Endpoint::Responses => {
                Dialect::OpenAi
            }
            Endpoint::Messages => Dialect::Anthropic,
        }
    }

    /// The path under a deployment's base URL.
    pub(crate) fn upstream_path(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat/completions",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Messages => "messages",
            Endpoint::Responses => "responses",
        }
    }

    /// The name in usage records and metrics.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat.completions",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Messages => "messages",
            Endpoint::Responses => "responses",
        }
    }

    /// The path clients call, for messages.
    pub(crate) fn client_path(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/v1/chat/completions",
            Endpoint::Completions => "/v1/completions",
            Endpoint::Embeddings => "/v1/embeddings",
            Endpoint::Messages => "/v1/messages",
            Endpoint::Responses => "/v1/responses",
        }
    }

    pub(crate) fn can_stream(self) -> bool {
        match self {
            Endpoint::ChatCompletions | Endpoint::Completions | Endpoint::Messages | Endpoint::Responses => true,
            Endpoint::Embeddings => false,
        }
    }

    /// Usage and generated text in a whole response body from this endpoint.
    pub(crate) fn read_body(self, body: &[u8]) -> Option<ResponseView> {
        match self {
            Endpoint::Responses => moat_wire::responses::read_response(body),
            _ => match self.dialect() {
                Dialect::OpenAi => openai::read_response(body),
                Dialect::Anthropic => anthropic::read_message(body),
            },
        }
    }
}

/// A decoded request body in its ingress dialect.
pub(crate) enum Decoded<'a> {
    OpenAi(OpenAiRequest<'a>),
    Anthropic(AnthropicRequest<'a>),
}

impl<'a> Decoded<'a> {
    pub(crate) fn parse(endpoint: Endpoint, body: &'a [u8]) -> Result<Self, ApiError> {
        let decoded = match endpoint.dialect() {
            Dialect::OpenAi => OpenAiRequest::parse(body).map(Decoded::OpenAi),
            Dialect::Anthropic => AnthropicRequest::parse(body).map(Decoded::Anthropic),
        };
        decoded.map_err(|error| match error {
            RequestError::InvalidJson(detail) => {
                ApiError::new(ErrorCode::InvalidJson, format!("the request body is not a valid JSON object: {detail}"))
            }
            RequestError::InvalidField(message) => ApiError::new(ErrorCode::InvalidRequest, message),
        })
    }

    pub(crate) fn model(&self) -> &str {
        match self {
            Decoded::OpenAi(r) => &r.model,
            Decoded::Anthropic(r) => &r.model,
        }
    }

    pub(crate) fn stream(&self) -> bool {
        match self {
            Decoded::OpenAi(r) => r.stream,
            Decoded::Anthropic(r) => r.stream,
        }
    }

    /// The most output tokens the request allows, if it says.
    pub(crate) fn max_output_tokens(&self) -> Option<u64> {
        match self {
            Decoded::OpenAi(r) => r.max_output_tokens(),
            Decoded::Anthropic(r) => r.max_output_tokens(),
        }
    }

    /// Whether moat must hold back the usage-only chunk it asked for (OpenAI streams whose
    /// client did not ask for usage).
    pub(crate) fn strip_usage_chunk(&self) -> bool {
        match self {
            Decoded::OpenAi(r) => !r.client_wants_stream_usage,
            Decoded::Anthropic(_) => false,
        }
    }

    pub(crate) fn to_upstream_body(&self, endpoint: Endpoint, deployment: &DeploymentSpec) -> Vec<u8> {
        match self {
            // The Responses API takes no stream_options and no stop sequences.
            Decoded::OpenAi(r) if endpoint == Endpoint::Responses => r.with_model(&deployment.upstream_model),
            Decoded::OpenAi(r) => r.to_upstream_body(&deployment.upstream_model, &deployment.stop),
            Decoded::Anthropic(r) => r.to_upstream_body(&deployment.upstream_model, &deployment.stop),
        }
    }
}

/// The prompt text of a request body, for counting input tokens.
pub(crate) fn prompt_text(dialect: Dialect, body: &[u8]) -> String {
    match dialect {
        Dialect::OpenAi => OpenAiRequest::parse(body).map(|r| r.prompt_text()).unwrap_or_default(),
        Dialect::Anthropic => AnthropicRequest::parse(body).map(|r| r.prompt_text()).unwrap_or_default(),
    }
}

const ANTHROPIC_VERSION: HeaderName = HeaderName::from_static("anthropic-version");
const ANTHROPIC_BETA: HeaderName = HeaderName::from_static("anthropic-beta");

/// The dialect headers to send upstream. For Anthropic: the client's `anthropic-version` (or a
/// default), and only the `anthropic-beta` values the deployment accepts.
pub(crate) fn upstream_headers(dialect: Dialect, client: &HeaderMap, deployment: &DeploymentSpec) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if dialect != Dialect::Anthropic {
        return headers;
    }
    let version =
        client.get(&ANTHROPIC_VERSION).cloned().unwrap_or_else(|| HeaderValue::from_static(anthropic::DEFAULT_VERSION));
    headers.insert(ANTHROPIC_VERSION, version);
    let allowed: Vec<&str> = client
        .get_all(&ANTHROPIC_BETA)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|beta| deployment.anthropic_beta.iter().any(|a| a == beta))
        .collect();
    if !allowed.is_empty()
        && let Ok(value) = HeaderValue::from_str(&allowed.join(","))
    {
        headers.insert(ANTHROPIC_BETA, value);
    }
    headers
}
