"""The interface every backend shares: a batch of chat requests in, one result per request out; and
`open_backend`, which backend a `BackendConfig` names (the engine modules load only when one is opened).

A backend never raises for a single bad request: it returns a result with finish_reason "error" and
the reason in `error`, so the stage can reject that row and keep the rest.
"""

import hashlib
import json
from dataclasses import dataclass, field
from typing import Protocol

from synth.models import resolve_model
from synth.recipe import BackendConfig, RayConfig


@dataclass(frozen=True)
class ChatRequest:
    messages: list[dict]
    seed: int
    max_tokens: int = 512
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 0  # 0 = off
    repetition_penalty: float = 1.0
    stop: tuple[str, ...] = ()
    json_schema: dict | None = None

    def key(self, model: str) -> str:
        """Request-cache key: model, rendered messages, sampling parameters incl. seed, output schema."""
        # vars(), not asdict(): asdict deep-copies the messages, three quarters of a warm run's time; the
        # JSON (so every existing cache key) is the same, since json.dumps reads a tuple as a list.
        payload = json.dumps([model, vars(self)], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass
class ChatResult:
    text: str
    finish_reason: str  # "stop" | "length" | "error" | "too_long" (prompt + max_tokens over the context; not sent)
    prompt_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens served from the prefix cache, when the backend says
    error: str = ""
    retries: int = 0
    extra: dict = field(default_factory=dict)


class Backend(Protocol):
    model: str

    def generate(self, requests: list[ChatRequest]) -> list[ChatResult]: ...

    def close(self) -> None: ...


def open_backend(config: BackendConfig, name: str | None = None, ray: RayConfig | None = None):
    """The backend `config` describes; `name` (default: the model as configured) keys its requests in the cache.
    With `ray`, vLLM runs as Ray replicas; the cache key is the same, so either executor resumes the other's run."""
    if ray is not None:
        from synth.ray_backend import RayBackend

        return RayBackend(
            resolve_model(config.model),
            name=name or config.model,
            replicas=ray.replicas,
            address=ray.address,
            num_cpus=ray.num_cpus,
            gpus_per_replica=ray.gpus_per_replica,
            cpus_per_replica=ray.cpus_per_replica,
            start_timeout_s=ray.start_timeout_s,
            temp_dir=ray.temp_dir,
            **vllm_options(config),
        )
    if config.kind == "openai":
        from synth.openai_backend import OpenAIBackend

        return OpenAIBackend(
            config.model,
            config.base_url,
            api_key_env=config.api_key_env,
            concurrency=config.concurrency,
            timeout_s=config.timeout_s,
            max_retries=config.max_retries,
            backoff_s=config.backoff_s,
        )
    # Else 'vllm': the knob takes no other kind, and executor=ray only with it (both checked when the recipe loads).
    from synth.vllm_backend import VLLMBackend

    return VLLMBackend(resolve_model(config.model), name=name or config.model, **vllm_options(config))


def vllm_options(config: BackendConfig) -> dict:
    return dict(
        max_model_len=config.max_model_len,
        batch_size=config.batch_size,
        kv_cache_gb=config.kv_cache_gb,
        dtype=config.dtype,
        gpu_memory_utilization=config.gpu_memory_utilization,
        tensor_parallel_size=config.tensor_parallel_size,
    )
