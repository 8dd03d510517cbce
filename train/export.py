"""LoRA merge and export: the adapter folded into the base weights, saved as a plain HF folder (config,
generation config with the model's end-of-turn ids, safetensors, tokenizer with the chat template used in
training) that vLLM and transformers load without PEFT.

    .venv/bin/dramatis train RECIPE merge=true     (the default; the folder is OUT/merged)
"""

from pathlib import Path

from synth.shards import staged_folder


def merge(base: str, adapter: Path, folder: Path, dtype) -> Path:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # Merged in fp32: adding the low-rank product to bf16 weights would round most of it away.
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    with staged_folder(folder) as staging:
        merged.to(dtype).save_pretrained(staging)
        AutoTokenizer.from_pretrained(str(adapter)).save_pretrained(staging)
    return folder
