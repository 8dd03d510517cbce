"""Seeds → character profiles: records, source and seed loading, language identification, the profile prompt and
its validation, embeddings, and the character split with its leakage check.

Pure domain logic: nothing here calls a generator or writes shards (that is `synth/`).
"""
