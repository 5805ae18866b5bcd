"""Every /v1 error, with its HTTP status and OpenAI-style body. Views never build error JSON themselves.

    GatewayError (500 server_error)
    ├── InvalidRequest (400, names the `param`)
    ├── InvalidApiKey (401)          missing, unknown, revoked or expired key
    ├── AliasNotAllowed (403)
    ├── UnknownAlias (404)
    ├── NotFound (404)               no such /v1 route
    ├── ResponseNotFound (404)       no stored /v1/responses id of this team
    ├── PromptNotFound (404)         no /v1/prompts template this caller may call
    ├── PromptNotPublished (404)     nothing published in the asked environment
    ├── OutputSchemaMismatch (422)   the answer does not validate against the template's output schema
    ├── PromptsUnavailable (503)     an unpublished version cannot be read (database away)
    ├── MethodNotAllowed (405)
    ├── BodyTooLarge (413)           also after decompression
    ├── UnsupportedMediaType (415)   a Content-Encoding other than identity, gzip or deflate
    ├── RateLimited (429, Retry-After)
    ├── BudgetExceeded (429 insufficient_quota)
    ├── LimitsUnavailable (503)      limits exist but no store to check them answers: fail closed
    ├── KeysUnavailable (503)        a key not in memory cannot be looked up (database away)
    ├── ResponsesUnavailable (503)   stored responses cannot be read (database away)
    ├── DeploymentsUnavailable (503) every deployment is held back: breakers open, provider quotas reached
    ├── UpstreamRejected (the provider's own 4xx status and message)
    ├── AllDeploymentsFailed (502)
    └── AllDeploymentsTimedOut (504)
Messages never carry keys, credentials or stack traces, and are cut to bounds.MAX_MESSAGE_CHARS: they may
quote a client's (or an upstream's) text. The same errors are rendered Anthropic-style on /v1/messages*.
"""

from core.bounds import MAX_MESSAGE_CHARS, clip

# --- what an adapter raises: one upstream attempt failed (the engine decides what happens next) -----------


class UpstreamError(Exception):
    """An upstream could not be reached, timed out, or answered with an error status.

    `is_retryable` is true only when the attempt provably produced nothing billable: the connection failed,
    or the upstream answered 408/409/429/5xx before any body reached us. Another deployment may then be tried.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_type: str = "upstream_error",
        code: str | None = None,
        param: str | None = None,
        is_timeout: bool = False,
        is_retryable: bool = False,
        retry_after: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_type = error_type
        self.code = code
        self.param = param
        self.is_timeout = is_timeout
        self.is_retryable = is_retryable
        self.retry_after = retry_after


RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


# --- what a client is answered ---------------------------------------------------------------------------


class GatewayError(Exception):
    status = 500
    type = "server_error"
    code: str | None = None
    param: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        message = clip(message, MAX_MESSAGE_CHARS)
        super().__init__(message)
        self.message = message
        if param is not None:
            self.param = param
        if code is not None:
            self.code = code
        self.headers: dict[str, str] = {}

    def to_body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class InvalidRequest(GatewayError):
    status, type = 400, "invalid_request_error"


class InvalidApiKey(GatewayError):
    status, type, code = 401, "invalid_request_error", "invalid_api_key"


class AliasNotAllowed(GatewayError):
    status, type, code, param = 403, "permission_error", "model_not_allowed", "model"


class UnknownAlias(GatewayError):
    status, type, code, param = 404, "invalid_request_error", "model_not_found", "model"


class NotFound(GatewayError):
    status, type, code = 404, "invalid_request_error", "unknown_url"


class MethodNotAllowed(GatewayError):
    status, type, code = 405, "invalid_request_error", "method_not_allowed"


class BodyTooLarge(GatewayError):
    status, type, code = 413, "invalid_request_error", "request_too_large"


class UnsupportedMediaType(GatewayError):
    status, type, code = 415, "invalid_request_error", "unsupported_content_encoding"


class RateLimited(GatewayError):
    status, type, code = 429, "rate_limit_error", "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after_s: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.headers["retry-after"] = str(max(1, retry_after_s))


class UpstreamRejected(GatewayError):
    """The provider refused the request (a 4xx): its status and message, in the caller's format."""

    def __init__(self, message: str, *, status: int, error_type: str, code=None, param=None, retry_after=None):
        # The upstream's fields may be any JSON value of any size: strings, and short ones, to the client.
        super().__init__(
            message,
            code=None if code is None else clip(code, 64),
            param=None if param is None else clip(param),
        )
        self.status = status
        self.type = clip(error_type, 64)
        if retry_after:
            self.headers["retry-after"] = retry_after


class AllDeploymentsFailed(GatewayError):
    status, type, code = 502, "upstream_error", "all_deployments_failed"


class AllDeploymentsTimedOut(GatewayError):
    status, type, code = 504, "timeout", "upstream_timeout"


class BudgetExceeded(GatewayError):
    # OpenAI answers an exhausted quota with 429 insufficient_quota; clients already handle that shape.
    status, type, code = 429, "insufficient_quota", "budget_exceeded"


class LimitsUnavailable(GatewayError):
    status, type, code = 503, "server_error", "limits_unavailable"


class KeysUnavailable(GatewayError):
    status, type, code = 503, "server_error", "keys_unavailable"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.headers["retry-after"] = "1"


class DeploymentsUnavailable(GatewayError):
    status, type, code = 503, "server_error", "deployments_unavailable"

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.headers["retry-after"] = str(max(1, retry_after_s))


class ResponseNotFound(GatewayError):
    """A stored /v1/responses id this team does not have (never stored, deleted, expired, or another team's)."""

    status, type, code = 404, "invalid_request_error", "response_not_found"


class ResponsesUnavailable(GatewayError):
    """Stored responses live in the database; without it, previous_response_id and GET cannot be answered."""

    status, type, code = 503, "server_error", "responses_unavailable"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.headers["retry-after"] = "1"


MAX_RAW_OUTPUT_CHARS = 100_000  # the unparsable answer returned with a 422


class PromptNotFound(GatewayError):
    """A /v1/prompts slug this caller may not call: unknown, another team's, another tenant's (all alike)."""

    status, type, code, param = 404, "invalid_request_error", "prompt_not_found", None


class PromptNotPublished(GatewayError):
    status, type, code, param = 404, "invalid_request_error", "prompt_not_published", "environment"


class PromptsUnavailable(GatewayError):
    status, type, code = 503, "server_error", "prompts_unavailable"


class OutputSchemaMismatch(GatewayError):
    """The answer is not JSON of the template's output schema. The raw text goes back with it: it was paid for."""

    status, type, code = 422, "invalid_response_error", "output_schema_mismatch"

    def __init__(self, message: str, *, raw_output: str) -> None:
        super().__init__(message)
        self.raw_output = clip(raw_output, MAX_RAW_OUTPUT_CHARS)

    def to_body(self) -> dict:
        body = super().to_body()
        body["error"]["raw_output"] = self.raw_output
        return body
