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
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


# Seen here: vLLM on CPU sorts the whole vocabulary for top-p (262k entries for Gemma) at every step,
# which halved Gemma's decode speed; top-k alone takes a cheap partial top-k instead.
TOP_K_HELP = (
    "sample from the k likeliest tokens (0 = off); on CPU prefer top_k with top_p=1.0: top-p sorts the vocabulary"
)


@dataclass
class SeedsConfig:
    source: str = knob("builtin", "'builtin', a .jsonl/.csv/.txt path, or hf:<dataset id>[:<config>]")
    field: str = knob("persona", "the jsonl key / csv column / dataset column holding the persona")
    split: str = knob("train", "dataset split, for hf: sources")
    sample: int = knob(0, "keep a deterministic sample of this many unique personas (0 = all)")


@dataclass
class ProfilesConfig:
    language: str = knob("auto", "language of the profiles: an ISO code, or 'auto' = the seed's own language")
    max_tokens: int = knob(768, "output token budget per profile; a profile that hits it is retried, then rejected")
    temperature: float = knob(0.7, "sampling temperature")
    top_p: float = knob(0.95, "nucleus sampling (1.0 = off)")
    top_k: int = knob(0, TOP_K_HELP)
    repetition_penalty: float = knob(1.0, "vLLM repetition penalty (1.0 = off)")
    max_attempts: int = knob(3, "LLM attempts per persona (new seed each) before the row is rejected")


INSTRUCTIONS = "../shared/data/instructions/"


@dataclass
class InstructionsConfig:
    sources: list = knob(
        [
            INSTRUCTIONS + "self_instruct_seed_tasks.jsonl",
            INSTRUCTIONS + "self_instruct_user_oriented.jsonl",
            INSTRUCTIONS + "mt_bench_questions.jsonl",
        ],
        "instruction files (.jsonl/.csv) or hf:<dataset id>[:<config>]",
    )
    split: str = knob("train", "dataset split, for hf: sources")
    sample: int = knob(0, "keep a deterministic sample of this many prompts per source (0 = all)")
    id_field: str = knob("id,question_id", "column(s) holding the row's own id; alternatives separated by commas")
    instruction_field: str = knob("instruction,prompt,question", "column(s) holding the instruction")
    input_field: str = knob(
        "input,instances.0.input", "column(s) holding the optional input; dotted paths walk nested rows"
    )
    output_field: str = knob("output,response,instances.0.output", "column(s) holding the reference answer (R mode)")
    turns_field: str = knob("turns", "column holding a list of user turns (multi-turn sources such as MT-Bench)")
    category_field: str = knob("category,motivation_app", "column(s) holding a category label")


@dataclass
class SplitConfig:
    train: float = knob(0.8, "share of characters in the training split")
    validation: float = knob(
        0.1, "share of characters in the validation split (unseen characters, for validation loss)"
    )
    heldout: float = knob(0.1, "share of characters kept for evaluation only")
    heldout_prompts: float = knob(0.1, "share of prompts kept for the held-out characters only (never trained on)")
    eval_sets: list = knob(
        [], "persona files (jsonl with 'persona') used for evaluation: no training character may be near them"
    )
    similarity: float = knob(0.9, "MiniLM cosine similarity at or above which two characters count as the same")
    same_name_similarity: float = knob(
        0.5, "profile similarity at or above which two characters with one name count as the same"
    )


@dataclass
class DialoguesConfig:
    """Dialogues are written in each character's language: set it with profiles.language."""

    modes: list = knob(["G"], "R (rewrite the reference answer in character) and/or G (generate in character)")
    characters_per_prompt: int = knob(3, "characters each prompt is given to (OpenCharacter: 3)")
    multi_turn_share: float = knob(0.5, "share of G dialogues continued by the user simulator")
    user_turns: str = knob("2-10:0.9,11-24:0.1", "user turns of a multi-turn dialogue: 'lo-hi:weight,...'")
    user_persona_share: float = knob(0.0, "share of dialogues where the user plays another character of the run")
    action_cues_share: float = knob(
        0.0, "share of dialogues asked for action cues in parentheses, e.g. (laughs) / (责备)"
    )
    order: str = knob(
        "character", "'character' (one character's requests adjacent: prefix cache) or 'shuffled' (benchmark only)"
    )
    max_reply_chars: int = knob(900, "longest character reply; the JSON grammar closes it here")
    max_user_chars: int = knob(300, "longest simulated user message")
    max_tokens: int = knob(512, "output token budget per request")
    temperature: float = knob(0.8, "sampling temperature")
    top_p: float = knob(0.95, "nucleus sampling (1.0 = off)")
    top_k: int = knob(0, TOP_K_HELP)
    repetition_penalty: float = knob(1.1, "vLLM repetition penalty; a small base model loops without one")
    max_attempts: int = knob(3, "attempts per turn (new seed each) before the dialogue is rejected")


@dataclass
class DedupConfig:
    """Persona Hub's recipe: MinHash on word 1-grams, 128 permutations, 0.9; then optionally embeddings at 0.9."""

    ngram: int = knob(1, "MinHash shingles: word n-grams (each Han character counts as a word)")
    threshold: float = knob(0.9, "estimated Jaccard at or above which two texts are near-duplicates")
    num_perm: int = knob(128, "MinHash permutations")
    semantic: bool = knob(
        False, "also drop English texts whose MiniLM cosine to a kept one reaches semantic_threshold"
    )
    semantic_threshold: float = knob(0.9, "MiniLM cosine for semantic dedup")
    seeds: bool = knob(True, "near-duplicate dedup of the seed personas (exact dedup always runs)")
    profiles: bool = knob(True, "near-duplicate dedup of profiles (name left out), before the split")
    names: bool = knob(True, "drop a character whose name an earlier character already has")
    responses: bool = knob(True, "drop a dialogue whose character turns (nearly) repeat an earlier dialogue's")


@dataclass
class CurateConfig:
    fix_unicode: bool = knob(True, "repair mojibake with ftfy; a turn still broken after repair is dropped")
    chinese: str = knob("keep", "'keep', 'simplified' or 'traditional': convert Chinese rows with OpenCC")
    min_chars: int = knob(2, "shortest character turn, in characters")
    max_chars: int = knob(4000, "longest character turn, in characters")
    min_turns: int = knob(1, "fewest character turns per dialogue")
    max_turns: int = knob(64, "most character turns per dialogue")
    max_garbled: float = knob(
        0.1, "largest share of a turn that may be control/unassigned characters, U+FFFD or markup tags"
    )
    max_repeated: float = knob(
        0.5, "largest share of a turn's word 3-grams that may repeat earlier ones (a looping model)"
    )
    refusals: bool = knob(
        True, "drop dialogues where the character refuses like an assistant ('I'm sorry, but I can't')"
    )
    checks: bool = knob(
        True, "re-run the generation checks (assistant_speak, wrong_character, wrong_language) on stored turns"
    )


@dataclass
class PublishConfig:
    repo: str = knob("", "Hugging Face dataset repo, user/name (`dramatis publish --repo` wins)")
    private: bool = knob(False, "create the repo private")
    format: str = knob("parquet", "'parquet' (what the Hub's viewer reads) or 'arrow' (our shards as they are)")
    license: str = knob("auto", "license id for the card; 'auto' inherits it from the seed source")


@dataclass
class BackendConfig:
    kind: str = knob("vllm", "'vllm' (offline engine in this process) or 'openai' (any OpenAI-compatible server)")
    model: str = knob(
        "gemma3-270m", "'gemma3-270m' (offline default), 'tiny' (test model), an HF id or a local folder"
    )
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
class RayConfig:
    """Used when executor=ray: generation spread over vLLM replicas (Ray actors); everything else as before."""

    address: str = knob(
        "",
        "Ray cluster: '' starts a local instance in this process, 'auto' joins the one `ray start` made, or ray://host:10001",
    )
    replicas: int = knob(2, "model replicas (one vLLM engine each, backend.tensor_parallel_size GPUs each)")
    gpus_per_replica: float = knob(
        -1.0, "GPUs per replica: -1 = backend.tensor_parallel_size if the cluster has GPUs, else 0 (CPU)"
    )
    cpus_per_replica: float = knob(1.0, "CPUs Ray reserves per replica")
    num_cpus: int = knob(0, "local instance only: CPUs it may use (0 = all)")
    temp_dir: str = knob("", "local instance only: Ray's session files (default /tmp/ray)")
    start_timeout_s: float = knob(600.0, "replicas not up by then are an error, not a wait")


@dataclass
class Recipe:
    name: str = knob("demo", "run name")
    out: str = knob("runs/demo", "output folder of the run")
    seed: int = knob(0, "root of every random choice (sampling seeds, samples)")
    chunk_size: int = knob(2048, "records per shard; also the unit of resume")
    executor: str = knob(
        "local",
        "'local' (one process) or 'ray' (vLLM replicas as Ray actors, see ray.*; shards, cache and resume unchanged)",
    )
    seeds: SeedsConfig = field(default_factory=SeedsConfig)
    profiles: ProfilesConfig = field(default_factory=ProfilesConfig)
    instructions: InstructionsConfig = field(default_factory=InstructionsConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    dialogues: DialoguesConfig = field(default_factory=DialoguesConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)
    curate: CurateConfig = field(default_factory=CurateConfig)
    publish: PublishConfig = field(default_factory=PublishConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    ray: RayConfig = field(default_factory=RayConfig)


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
    if kind is float and isinstance(value, str):
        try:
            return float(value)  # YAML 1.1 reads `3e-4` (no dot) as a string; everyone writes learning rates so
        except ValueError:
            pass
    if type(value) is not kind:
        raise DramatisError(f"{key}: expected {kind.__name__}, got {value!r}")
    return value


def _apply(obj, data: dict, where: str, prefix: str = "", root: type | None = None) -> None:
    names = {f.name: f for f in dataclasses.fields(obj)}
    root = root or type(obj)
    for key, value in data.items():
        full = prefix + str(key)
        if key not in names:
            close = difflib.get_close_matches(full, _keys(root), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise DramatisError(f"{where}: unknown recipe key '{full}'{hint}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise DramatisError(f"{where}: '{full}' is a section; give it keys, not {value!r}")
            _apply(current, value, where, full + ".", root)
        else:
            setattr(obj, key, _coerce(f"{where}: {full}", value, current))


def _nest(dotted: str, value) -> dict:
    head, _, rest = dotted.partition(".")
    return {head: _nest(rest, value) if rest else value}


def load_recipe(path: str | Path | None, overrides: list[str] = (), base: dict | None = None, kind: type = Recipe):
    """The recipe at `path` (or `base`, a resolved recipe dict such as a manifest's) with `overrides` applied;
    `kind` is the recipe dataclass (synth's `Recipe`, train's `TrainRecipe`)."""
    recipe = kind()
    if base is not None:
        _apply(recipe, base, "recipe of the run")
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
            raise DramatisError(
                f"override '{item}': the value is not valid YAML ({getattr(e, 'problem', e)})"
            ) from None
        _apply(recipe, _nest(key.strip(), value), "override")
    return recipe


def as_dict(recipe: Recipe) -> dict:
    return asdict(recipe)
