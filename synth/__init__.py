"""The engine and the stages of `make synth`.

The engine: Arrow shards, the stage runner, the request cache, backends (vLLM, OpenAI-compatible, Ray), recipes and
the `dramatis` CLI. The stages: profiles, split, prompts, dialogues (rollout, quality checks), curation and dedup,
the dataset folder; then the data report and publishing to the Hub.
"""
