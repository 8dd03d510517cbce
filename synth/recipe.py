"""Recipes: dataclasses with a help string per field, loaded from YAML, then `key=value` overrides.

One config mechanism (GUIDE §4). An unknown key is an error that names it and suggests the closest
known key; a value of the wrong type is an error that names the key and the expected type.
"""

import dataclasses
import difflib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from personas.errors import DramatisError


def knob(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass
class SeedsConfig:
    source: str = knob("builtin", "'builtin', a .jsonl/.csv/.txt path, or hf:<dataset id>")
    field: str = knob("persona", "the jsonl key / csv column / dataset column holding the persona")
    split: str = knob("train", "dataset split, for hf: sources")
    sample: int = knob(0, "keep a deterministic sample of this many unique personas (0 = all)")


@dataclass
class ProfilesConfig:
    language: str = knob("auto", "language of the profiles: an ISO code, or 'auto' = the seed's own language")
    max_tokens: int = knob(768, "output token budget per profile; a profile that hits it is retried, then rejected")
    temperature: float = knob(0.7, "sampling temperature")
    top_p: float = knob(0.95, "nucleus sampling")
    repetition_penalty: float = knob(1.0, "vLLM repetition penalty (1.0 = off)")
    max_attempts: int = knob(3, "LLM attempts per persona (new seed each) before the row is rejected")


@dataclass
class BackendConfig:
    kind: str = knob("vllm", "'vllm' (offline engine in this process) or 'openai' (any OpenAI-compatible server)")
    model: str = knob("gemma3-270m", "'gemma3-270m' (offline default), 'tiny' (test model), an HF id or a local folder")
    batch_size: int = knob(4096, "vllm: requests per LLM.chat call")
    max_model_len: int = knob(4096, "vllm: context length")
    kv_cache_gb: float = knob(1.0, "vllm on CPU: KV cache budget in GiB")
    gpu_memory_utilization: float = knob(0.9, "vllm on GPU: share of GPU memory vLLM may use")
    tensor_parallel_size: int = knob(1, "vllm on GPU: GPUs per model replica")
    base_url: str = knob("http://127.0.0.1:8000/v1", "openai: server URL up to /v1")
    api_key_env: str = knob("OPENAI_API_KEY", "openai: environment variable that holds the API key")
    concurrency: int = knob(16, "openai: requests in flight at once")
    timeout_s: float = knob(120.0, "openai: per-request timeout in seconds")
    max_retries: int = knob(5, "openai: retries per request on 429/5xx/timeouts/dropped connections")
    backoff_s: float = knob(1.0, "openai: first retry wait; doubles each retry, with jitter")


@dataclass
class Recipe:
    name: str = knob("demo", "run name")
    out: str = knob("runs/demo", "output folder of the run")
    seed: int = knob(0, "root of every random choice (sampling seeds, samples)")
    chunk_size: int = knob(2048, "records per shard; also the unit of resume")
    seeds: SeedsConfig = field(default_factory=SeedsConfig)
    profiles: ProfilesConfig = field(default_factory=ProfilesConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)


def _keys(cls, prefix: str = "") -> list[str]:
    out = []
    for f in dataclasses.fields(cls):
        out.append(prefix + f.name)
        if dataclasses.is_dataclass(f.type):
            out += _keys(f.type, prefix + f.name + ".")
    return out


def _coerce(key: str, value, default):
    kind = type(default)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and kind in (float, str):
        return kind(value)  # YAML reads `1` for a float knob and `123` for a name: both are meant as given
    if type(value) is not kind:
        raise DramatisError(f"{key}: expected {kind.__name__}, got {value!r}")
    return value


def _apply(obj, data: dict, where: str, prefix: str = "") -> None:
    names = {f.name: f for f in dataclasses.fields(obj)}
    for key, value in data.items():
        full = prefix + str(key)
        if key not in names:
            close = difflib.get_close_matches(full, _keys(Recipe), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise DramatisError(f"{where}: unknown recipe key '{full}'{hint}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise DramatisError(f"{where}: '{full}' is a section; give it keys, not {value!r}")
            _apply(current, value, where, full + ".")
        else:
            setattr(obj, key, _coerce(f"{where}: {full}", value, current))


def _nest(dotted: str, value) -> dict:
    head, _, rest = dotted.partition(".")
    return {head: _nest(rest, value) if rest else value}


def load_recipe(path: str | Path | None, overrides: list[str] = ()) -> Recipe:
    recipe = Recipe()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise DramatisError(f"{path}: recipe not found")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark else str(path)
            raise DramatisError(f"{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
        if not isinstance(data, dict):
            raise DramatisError(f"{path}: a recipe is a mapping of keys, not {type(data).__name__}")
        _apply(recipe, data, str(path))
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise DramatisError(f"override '{item}': write it as key=value, e.g. backend.model=tiny")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as e:
            raise DramatisError(f"override '{item}': the value is not valid YAML ({getattr(e, 'problem', e)})") from None
        _apply(recipe, _nest(key.strip(), value), "override")
    return recipe


def as_dict(recipe: Recipe) -> dict:
    return asdict(recipe)
