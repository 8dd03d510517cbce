"""The engine: Arrow shards, the stage runner, the request cache, backends, recipes and the CLI."""
