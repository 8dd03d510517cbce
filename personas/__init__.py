"""Seeds → character profiles: records, seed loading, the profile prompt and its validation.

Pure domain logic: nothing here talks to a model or writes shards (that is `synth/`).
"""
