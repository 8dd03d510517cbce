"""synth's recipe: one section per stage (seeds, profiles, split, ...), loaded by the one config mechanism
(synth/config.py: YAML, then `key=value` overrides, every knob checked)."""

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from personas.errors import DramatisError
from personas.language import SUPPORTED
from synth.config import knob, load_config

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
    sample: int = knob(0, "keep a deterministic sample of this many unique personas (0 = all)", min=0)


@dataclass
class ProfilesConfig:
    language: str = knob(
        "auto",
        "language of the profiles: 'auto' = the seed's own (a seed in another language is a reject), or one of "
        + ", ".join(SUPPORTED),
        choices=("auto", *SUPPORTED),
    )
    max_tokens: int = knob(
        768, "output token budget per profile; a profile that hits it is retried, then rejected", min=1
    )
    temperature: float = knob(0.7, "sampling temperature", min=0)
    top_p: float = knob(0.95, "nucleus sampling (1.0 = off)", min=0, max=1)
    top_k: int = knob(0, TOP_K_HELP, min=0)
    repetition_penalty: float = knob(1.0, "vLLM repetition penalty (1.0 = off)")
    max_attempts: int = knob(3, "LLM attempts per persona (new seed each) before the row is rejected", min=1)


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
    sample: int = knob(0, "keep a deterministic sample of this many prompts per source (0 = all)", min=0)
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
    # Shares of the characters: check() requires that they sum to 1.
    train: float = knob(0.8, "share of characters in the training split", min=0)
    validation: float = knob(
        0.1, "share of characters in the validation split (unseen characters, for validation loss)", min=0
    )
    heldout: float = knob(0.1, "share of characters kept for evaluation only", min=0)
    heldout_prompts: float = knob(
        0.1, "share of prompts kept for the held-out characters only (never trained on)", min=0, max=1
    )
    eval_sets: list = knob(
        [], "persona files (jsonl with 'persona') used for evaluation: no training character may be near them"
    )
    similarity: float = knob(
        0.9, "MiniLM cosine similarity at or above which two characters count as the same", min=0, max=1
    )
    same_name_similarity: float = knob(
        0.5, "profile similarity at or above which two characters with one name count as the same", min=0, max=1
    )

    def check(self) -> None:
        shares = f"split.train={self.train}, split.validation={self.validation}, split.heldout={self.heldout}"
        total = self.train + self.validation + self.heldout
        if total <= 0:
            raise DramatisError(f"{shares}: give at least one a share above 0, e.g. split.train=0.8")
        # Shares of the characters: a sum other than 1 is a typo (train=0.9 validation=0.5), and dividing by the
        # sum would hide it in a different split than the one the user wrote.
        if abs(total - 1) > 1e-6:
            rest = 1 - self.train - self.validation
            hint = f"split.heldout={round(rest, 6)}" if 0 <= rest <= 1 else "e.g. split.train=0.8 split.validation=0.1"
            raise DramatisError(f"{shares}: the shares sum to {round(total, 6)}, not 1; {hint}")


def parse_turns(spec: str) -> list[tuple[int, int, float]]:
    """'2-10:0.9,11-24:0.1' → [(2, 10, 0.9), (11, 24, 0.1)]; a bad spec names the knob."""
    ranges = []
    for part in spec.split(","):
        try:
            span, _, weight = part.strip().partition(":")
            lo, dash, hi = span.partition("-")
            if dash and not hi.strip():  # '2-' is a range with its end left out, not the single value 2
                raise ValueError(span)
            lo, hi, w = int(lo), int(hi or lo), float(weight or 1)
            if not math.isfinite(w):
                raise ValueError(weight)
        except ValueError:
            raise DramatisError(
                f"dialogues.user_turns='{spec}': write 'lo-hi:weight,...', e.g. 2-10:0.9,11-24:0.1"
            ) from None
        if not 1 <= lo <= hi or w < 0:
            raise DramatisError(f"dialogues.user_turns='{spec}': ranges need 1 ≤ lo ≤ hi and weights ≥ 0")
        ranges.append((lo, hi, w))
    if not sum(w for _, _, w in ranges):
        raise DramatisError(f"dialogues.user_turns='{spec}': the weights sum to 0")
    return ranges


@dataclass
class DialoguesConfig:
    """Dialogues are written in each character's language: set it with profiles.language."""

    modes: list = knob(
        ["G"], "R (rewrite the reference answer in character) and/or G (generate in character)", choices=("R", "G")
    )
    characters_per_prompt: int = knob(3, "characters each prompt is given to (OpenCharacter: 3)", min=1)
    multi_turn_share: float = knob(0.5, "share of G dialogues continued by the user simulator", min=0, max=1)
    user_turns: str = knob("2-10:0.9,11-24:0.1", "user turns of a multi-turn dialogue: 'lo-hi:weight,...'")
    user_persona_share: float = knob(
        0.0, "share of dialogues where the user plays another character of the run", min=0, max=1
    )
    action_cues_share: float = knob(
        0.0, "share of dialogues asked for action cues in parentheses, e.g. (laughs) / (责备)", min=0, max=1
    )
    order: str = knob(
        "character",
        "'character' (one character's requests adjacent: prefix cache) or 'shuffled' (benchmark only)",
        choices=("character", "shuffled"),
    )
    max_reply_chars: int = knob(900, "longest character reply; the JSON grammar closes it here", min=1)
    max_user_chars: int = knob(300, "longest simulated user message", min=1)
    max_tokens: int = knob(512, "output token budget per request", min=1)
    temperature: float = knob(0.8, "sampling temperature", min=0)
    top_p: float = knob(0.95, "nucleus sampling (1.0 = off)", min=0, max=1)
    top_k: int = knob(0, TOP_K_HELP, min=0)
    repetition_penalty: float = knob(1.1, "vLLM repetition penalty; a small base model loops without one")
    max_attempts: int = knob(3, "attempts per turn (new seed each) before the dialogue is rejected", min=1)

    def check(self) -> None:
        if not self.modes:
            raise DramatisError(f"dialogues.modes={self.modes}: use R and/or G")
        parse_turns(self.user_turns)


@dataclass
class DedupConfig:
    """Persona Hub's recipe: MinHash on word 1-grams, 128 permutations, 0.9; then optionally embeddings at 0.9."""

    ngram: int = knob(1, "MinHash shingles: word n-grams (each Han character counts as a word)", min=1)
    threshold: float = knob(0.9, "estimated Jaccard at or above which two texts are near-duplicates", min=0, max=1)
    num_perm: int = knob(128, "MinHash permutations", min=1)
    semantic: bool = knob(
        False, "also drop English texts whose MiniLM cosine to a kept one reaches semantic_threshold"
    )
    semantic_threshold: float = knob(0.9, "MiniLM cosine for semantic dedup", min=0, max=1)
    seeds: bool = knob(True, "near-duplicate dedup of the seed personas (exact dedup always runs)")
    profiles: bool = knob(True, "near-duplicate dedup of profiles (name left out), before the split")
    names: bool = knob(True, "drop a character whose name an earlier character already has")
    responses: bool = knob(True, "drop a dialogue whose character turns (nearly) repeat an earlier dialogue's")


@dataclass
class CurateConfig:
    fix_unicode: bool = knob(True, "repair mojibake with ftfy; a turn still broken after repair is dropped")
    chinese: str = knob(
        "keep",
        "'keep', 'simplified' or 'traditional': convert Chinese rows with OpenCC",
        choices=("keep", "simplified", "traditional"),
    )
    min_chars: int = knob(2, "shortest character turn, in characters", min=0)
    max_chars: int = knob(4000, "longest character turn, in characters", min=0)
    min_turns: int = knob(1, "fewest character turns per dialogue", min=0)
    max_turns: int = knob(64, "most character turns per dialogue", min=0)
    max_garbled: float = knob(
        0.1, "largest share of a turn that may be control/unassigned characters, U+FFFD or markup tags", min=0, max=1
    )
    max_repeated: float = knob(
        0.5, "largest share of a turn's word 3-grams that may repeat earlier ones (a looping model)", min=0, max=1
    )
    refusals: bool = knob(
        True, "drop dialogues where the character refuses like an assistant ('I'm sorry, but I can't')"
    )
    debris: bool = knob(
        True, "drop dialogues whose character turns hold JSON or chat-template debris ('}}}', '<|im_end|>', 'user}')"
    )
    checks: bool = knob(
        True, "re-run the generation checks (assistant_speak, wrong_character, wrong_language) on stored turns"
    )

    def check(self) -> None:
        for low, high in (("min_chars", "max_chars"), ("min_turns", "max_turns")):
            if getattr(self, low) > getattr(self, high):
                raise DramatisError(
                    f"curate.{low}={getattr(self, low)}, curate.{high}={getattr(self, high)}: "
                    f"give {low} ≤ {high}, e.g. curate.{high}={getattr(self, low)}"
                )


@dataclass
class PublishConfig:
    repo: str = knob("", "Hugging Face dataset repo, user/name (`dramatis publish --repo` wins)")
    private: bool = knob(False, "create the repo private")
    format: str = knob(
        "parquet",
        "'parquet' (what the Hub's viewer reads) or 'arrow' (our shards as they are)",
        choices=("parquet", "arrow"),
    )
    license: str = knob("auto", "license id for the card; 'auto' inherits it from the seed source")


@dataclass
class BackendConfig:
    kind: str = knob(
        "vllm",
        "'vllm' (offline engine in this process) or 'openai' (any OpenAI-compatible server)",
        choices=("vllm", "openai"),
    )
    model: str = knob(
        "gemma3-270m", "'gemma3-270m' (offline default), 'tiny' (test model), an HF id or a local folder"
    )
    batch_size: int = knob(4096, "vllm: requests per LLM.chat call", min=1)
    max_model_len: int = knob(4096, "vllm: context length", min=1)
    kv_cache_gb: float = knob(1.0, "vllm on CPU: KV cache budget in GiB", min=0)
    dtype: str = knob(
        "auto",
        "vllm: weights and activations dtype: 'auto' (on CPU float32 unless the CPU has bf16 instructions; on GPU the "
        "model's own), 'float32', 'bfloat16' or 'float16'",
        choices=("auto", "float32", "bfloat16", "float16"),
    )
    gpu_memory_utilization: float = knob(0.9, "vllm on GPU: share of GPU memory vLLM may use", min=0, max=1)
    tensor_parallel_size: int = knob(1, "vllm on GPU: GPUs per model replica", min=1)
    base_url: str = knob("http://127.0.0.1:8000/v1", "openai: server URL up to /v1")
    api_key_env: str = knob("OPENAI_API_KEY", "openai: environment variable that holds the API key")
    concurrency: int = knob(16, "openai: requests in flight at once", min=1)
    timeout_s: float = knob(120.0, "openai: per-request timeout in seconds", min=0)
    max_retries: int = knob(5, "openai: retries per request on 429/5xx/timeouts/dropped connections", min=0)
    backoff_s: float = knob(1.0, "openai: first retry wait; doubles each retry, with jitter", min=0)


@dataclass
class RayConfig:
    """Used when executor=ray: generation spread over vLLM replicas (Ray actors); everything else as before."""

    address: str = knob(
        "",
        "Ray cluster: '' starts a local instance in this process, 'auto' joins the one `ray start` made, or ray://host:10001",
    )
    replicas: int = knob(2, "model replicas (one vLLM engine each, backend.tensor_parallel_size GPUs each)", min=1)
    gpus_per_replica: float = knob(
        -1.0, "GPUs per replica: -1 = backend.tensor_parallel_size if the cluster has GPUs, else 0 (CPU)"
    )
    cpus_per_replica: float = knob(1.0, "CPUs Ray reserves per replica", min=0)
    num_cpus: int = knob(0, "local instance only: CPUs it may use (0 = all)", min=0)
    temp_dir: str = knob("", "local instance only: Ray's session files (default /tmp/ray)")
    start_timeout_s: float = knob(600.0, "replicas not up by then are an error, not a wait")


@dataclass
class Recipe:
    name: str = knob("demo", "run name")
    out: str = knob("runs/demo", "output folder of the run")
    seed: int = knob(0, "root of every random choice (sampling seeds, samples)")
    chunk_size: int = knob(2048, "records per shard; also the unit of resume", min=1)
    executor: str = knob(
        "local",
        "'local' (one process) or 'ray' (vLLM replicas as Ray actors, see ray.*; shards, cache and resume unchanged)",
        choices=("local", "ray"),
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

    def check(self) -> None:
        if self.executor == "ray" and self.backend.kind != "vllm":
            raise DramatisError(
                f"executor=ray runs vLLM replicas; backend.kind={self.backend.kind} scales on its server: "
                "use executor=local"
            )


def load_recipe(path: str | Path | None, overrides: list[str] = (), base: dict | None = None) -> Recipe:
    """The recipe at `path` (or `base`, a resolved recipe dict such as a manifest's) with `overrides` applied,
    every knob and section checked."""
    return load_config(Recipe, path, overrides, base)


def as_dict(recipe: Recipe) -> dict:
    return asdict(recipe)
