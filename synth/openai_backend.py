"""Backend for any OpenAI-compatible server (vLLM's API server, TGI, Ollama, hosted APIs).

Async with a concurrency cap; tenacity retries 429/5xx/timeouts/dropped connections with exponential
backoff and jitter; a request that still fails becomes a result with finish_reason "error" and its reason.
The API key is read from an environment variable only and never stored.
"""

import asyncio
import os

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from personas.errors import DramatisError
from synth.backend import ChatRequest, ChatResult

CONTEXT = "context_length_exceeded"  # the error code OpenAI gives an over-long prompt


class Transient(Exception):
    """A response worth retrying (429 or 5xx, or a 200 whose body is not a completion)."""


RETRYABLE = (Transient, httpx.TimeoutException, httpx.TransportError)


class OpenAIBackend:
    def __init__(
        self,
        model: str,
        base_url: str,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 16,
        timeout_s: float = 120.0,
        max_retries: int = 5,
        backoff_s: float = 1.0,
        backoff_max_s: float = 30.0,
    ):
        self.model, self.base_url = model, base_url.rstrip("/")
        self.concurrency, self.timeout_s, self.max_retries = concurrency, timeout_s, max_retries
        self.backoff_s, self.backoff_max_s = backoff_s, backoff_max_s
        self.api_key_env = api_key_env
        key = os.environ.get(api_key_env, "")
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._check_reachable()

    def _check_reachable(self) -> None:
        """Fail before any work when nothing listens: one clear message instead of a run of rejects."""
        try:
            response = httpx.get(self.base_url + "/models", headers=self.headers, timeout=10)
        except httpx.HTTPError as e:
            raise DramatisError(
                f"backend.base_url={self.base_url}: cannot reach the server ({type(e).__name__}: {e})"
            ) from None
        # Some servers have no /models (404 is fine), but a refused key fails every request alike.
        if response.status_code in (401, 403):
            raise DramatisError(
                f"backend.base_url={self.base_url}: the server refused the API key (HTTP {response.status_code}); "
                f"set ${self.api_key_env}"
            )

    def _body(self, request: ChatRequest) -> dict:
        body = {
            "model": self.model,
            "messages": request.messages,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "seed": request.seed,
            **({"top_k": request.top_k} if request.top_k else {}),
        }  # not an OpenAI field: sent only when asked for
        if request.stop:
            body["stop"] = list(request.stop)
        if request.repetition_penalty != 1.0:
            body["repetition_penalty"] = request.repetition_penalty  # a vLLM extension; others ignore it
        if request.json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": request.json_schema},
            }
        return body

    async def _post(self, client: httpx.AsyncClient, body: dict) -> ChatResult:
        response = await client.post("/chat/completions", json=body)
        if response.status_code == 429 or response.status_code >= 500:
            raise Transient(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            error = f"HTTP {response.status_code}: {response.text[:300]}"
            # OpenAI's wording, which vLLM's server and most compatible ones copy: that row's prompt, not a fault.
            if response.status_code == 400 and ("maximum context length" in response.text or CONTEXT in response.text):
                return ChatResult("", "too_long", error=error)
            return ChatResult("", "error", error=error)
        try:
            data = response.json()
            choice = data["choices"][0]
            text, reason = choice["message"]["content"], choice["finish_reason"]
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise Transient(f"malformed completion ({type(e).__name__})") from None
        usage = data.get("usage") or {}
        details = usage.get("prompt_tokens_details") or {}
        return ChatResult(
            text or "",
            reason or "stop",
            usage.get("prompt_tokens", 0),
            usage.get("completion_tokens", 0),
            details.get("cached_tokens") or 0,
        )

    async def _one(self, client, limit: asyncio.Semaphore, request: ChatRequest) -> ChatResult:
        attempts = 0
        # Jitter scales with backoff_s: tenacity's default is a fixed 1 s, which swamps a short backoff_s.
        # `multiplier`, not `initial`: tenacity deprecates `initial` and warns on every request.
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_retries + 1),
            reraise=True,
            wait=wait_exponential_jitter(multiplier=self.backoff_s, max=self.backoff_max_s, jitter=self.backoff_s),
            retry=retry_if_exception_type(RETRYABLE),
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    async with limit:
                        result = await self._post(client, self._body(request))
        except RETRYABLE as e:
            return ChatResult(
                "", "error", error=f"gave up after {attempts} attempts: {type(e).__name__}: {e}", retries=attempts - 1
            )
        result.retries = attempts - 1
        return result

    async def _all(self, requests: list[ChatRequest]) -> list[ChatResult]:
        limit = asyncio.Semaphore(self.concurrency)
        limits = httpx.Limits(max_connections=self.concurrency)
        async with httpx.AsyncClient(
            base_url=self.base_url, headers=self.headers, timeout=self.timeout_s, limits=limits
        ) as client:
            return await asyncio.gather(*(self._one(client, limit, r) for r in requests))

    def generate(self, requests: list[ChatRequest]) -> list[ChatResult]:
        return asyncio.run(self._all(requests)) if requests else []

    def close(self) -> None:
        pass
