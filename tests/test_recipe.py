"""Recipes (synth/recipe.py) and the CLI's answer to bad input: exit 2, one `error:` line, nothing written."""

import json
from pathlib import Path

import pytest
import yaml

from personas.errors import DramatisError
from synth.recipe import as_dict, load_recipe
from tests.helpers import ROOT, run_cli

RECIPES = sorted((ROOT / "synth" / "recipes").glob("*.yaml"))


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def recipe_error(*args, **kwargs) -> str:
    with pytest.raises(DramatisError) as exc:
        load_recipe(*args, **kwargs)
    return str(exc.value)


# --- shipped recipes --------------------------------------------------------------------------------


def test_there_are_shipped_recipes():
    assert "demo.yaml" in [p.name for p in RECIPES]


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_shipped_recipe_loads_and_resolves_to_its_yaml_values(path):
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    resolved = as_dict(load_recipe(path))
    for key, value in data.items():
        if isinstance(value, dict):
            assert {k: resolved[key][k] for k in value} == value, key
        else:
            assert resolved[key] == value, key


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_shipped_recipe_first_line_is_a_comment_with_the_command_that_runs_it(path):
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("#")
    assert f"dramatis synth synth/recipes/{path.name}" in first


# --- overrides --------------------------------------------------------------------------------------


def test_overrides_reach_the_resolved_recipe():
    recipe = load_recipe(
        ROOT / "synth/recipes/demo.yaml",
        [
            "backend.model=tiny",
            "seeds.sample=5",
            "profiles.temperature=1",
            "backend.kv_cache_gb=0.25",
            "seeds.source=/data/x.jsonl",
            "out=runs/x",
            "name=123",
        ],
    )
    resolved = as_dict(recipe)
    assert resolved["backend"]["model"] == "tiny"
    assert resolved["seeds"]["sample"] == 5
    assert resolved["profiles"]["temperature"] == 1.0 and isinstance(recipe.profiles.temperature, float)
    assert resolved["backend"]["kv_cache_gb"] == 0.25
    assert resolved["seeds"]["source"] == "/data/x.jsonl"
    assert resolved["out"] == "runs/x"
    assert resolved["name"] == "123"  # a YAML int given for a text knob is meant as text
    # Untouched keys keep the recipe's values, and the defaults fill the rest.
    assert (
        resolved["seed"] == 1234
        and resolved["profiles"]["max_tokens"] == 768
        and resolved["backend"]["kind"] == "vllm"
    )
    assert resolved["profiles"]["repetition_penalty"] == 1.0  # not in demo.yaml: the default


def test_later_override_wins_and_overrides_work_without_a_recipe_file():
    recipe = load_recipe(None, ["seeds.sample=5", "seeds.sample=7", "chunk_size=3"])
    assert recipe.seeds.sample == 7 and recipe.chunk_size == 3
    assert as_dict(recipe)["seeds"] == {"source": "builtin", "field": "persona", "split": "train", "sample": 7}


def test_resolved_recipe_is_plain_json():
    resolved = as_dict(load_recipe(ROOT / "synth/recipes/demo.yaml", ["backend.model=tiny"]))
    assert json.loads(json.dumps(resolved)) == resolved


# --- bad recipes and overrides ----------------------------------------------------------------------


def test_unknown_yaml_key_is_named_with_the_closest_known_key(tmp_path):
    path = write(tmp_path / "r.yaml", "name: x\nprofiles:\n  max_token: 100\n")
    message = recipe_error(path)
    assert str(path) in message
    assert "'profiles.max_token'" in message and "did you mean 'profiles.max_tokens'" in message


def test_unknown_top_level_yaml_key_is_named_with_the_closest_known_key(tmp_path):
    message = recipe_error(write(tmp_path / "r.yaml", "chunksize: 10\n"))
    assert "'chunksize'" in message and "did you mean 'chunk_size'" in message


def test_unknown_override_key_is_named_with_the_closest_known_key():
    message = recipe_error(None, ["profiles.max_token=100"])
    assert "override" in message
    assert "'profiles.max_token'" in message and "did you mean 'profiles.max_tokens'" in message


def test_unknown_override_key_with_nothing_close_still_names_the_key():
    message = recipe_error(None, ["zzzzzz=1"])
    assert "unknown recipe key 'zzzzzz'" in message


@pytest.mark.parametrize(
    "override, key, expected",
    [
        ("seeds.sample=abc", "seeds.sample", "int"),
        ("seeds.sample=true", "seeds.sample", "int"),
        ("seeds.sample=1.5", "seeds.sample", "int"),
        ("profiles.temperature=hot", "profiles.temperature", "float"),
        ("backend.model=[a, b]", "backend.model", "str"),
    ],
)
def test_override_of_the_wrong_type_names_the_key_and_the_expected_type(override, key, expected):
    message = recipe_error(None, [override])
    assert key in message and f"expected {expected}" in message


def test_yaml_value_of_the_wrong_type_names_the_file_key_and_expected_type(tmp_path):
    path = write(tmp_path / "r.yaml", "seed: abc\n")
    message = recipe_error(path)
    assert str(path) in message and "seed" in message and "expected int" in message


def test_section_given_a_scalar_is_reported():
    message = recipe_error(None, ["seeds=5"])
    assert "'seeds' is a section" in message


@pytest.mark.parametrize(
    "text, line",
    [
        ("name: demo\nseed: 1\nprofiles:\n  max_tokens: 5\n   temperature: 0.1\n", 5),
        ("name: demo\nseeds:\n  source: [builtin\nseed: 2\n", 4),
        ("name: demo\nseed: 1\n\tout: x\n", 3),
    ],
)
def test_malformed_yaml_names_file_and_line(tmp_path, text, line):
    path = write(tmp_path / "r.yaml", text)
    message = recipe_error(path)
    assert message.startswith(f"{path}:{line}: not valid YAML")


def test_recipe_that_is_not_a_mapping_is_reported(tmp_path):
    path = write(tmp_path / "r.yaml", "- name: demo\n")
    assert str(path) in recipe_error(path)


def test_missing_recipe_file_is_reported(tmp_path):
    path = tmp_path / "nope.yaml"
    message = recipe_error(path)
    assert str(path) in message and "not found" in message


@pytest.mark.parametrize("override", ["seeds.sample", "=5", "backend.model"])
def test_override_without_key_or_equals_sign_is_reported(override):
    message = recipe_error(None, [override])
    assert f"override '{override}'" in message and "key=value" in message


@pytest.mark.parametrize("override", ["backend.model=a: b: c", "seeds.source=[unclosed", "name={x"])
def test_override_value_that_is_not_valid_yaml_is_reported(override):
    message = recipe_error(None, [override])
    assert f"override '{override}'" in message


# --- the CLI on bad input: exit 2, one error line, nothing written ----------------------------------


def assert_cli_error(result, *fragments: str) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


@pytest.mark.cli
def test_cli_unknown_recipe_key_exits_2_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    recipe = write(tmp_path / "r.yaml", "name: x\nprofiles:\n  max_token: 100\n")
    result = run_cli("synth", str(recipe), f"out={out}")
    assert_cli_error(result, str(recipe), "'profiles.max_token'", "did you mean 'profiles.max_tokens'")
    assert not out.exists()


@pytest.mark.cli
def test_cli_unknown_override_key_exits_2_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    result = run_cli("synth", "synth/recipes/demo.yaml", "profiles.max_token=100", f"out={out}")
    assert_cli_error(result, "'profiles.max_token'", "did you mean 'profiles.max_tokens'")
    assert not out.exists()


@pytest.mark.cli
def test_cli_missing_seed_file_exits_2_and_writes_nothing(tmp_path):
    out, seeds = tmp_path / "run", tmp_path / "missing.jsonl"
    result = run_cli("synth", "synth/recipes/demo.yaml", f"seeds.source={seeds}", f"out={out}")
    assert_cli_error(result, str(seeds), "not found")
    assert not out.exists()


@pytest.mark.cli
def test_cli_seed_file_with_a_non_json_line_exits_2_naming_file_and_line(tmp_path):
    out = tmp_path / "run"
    seeds = write(tmp_path / "seeds.jsonl", '{"persona": "A chef who bakes bread."}\n\n{"persona": oops}\n')
    result = run_cli("synth", "synth/recipes/demo.yaml", f"seeds.source={seeds}", f"out={out}")
    assert_cli_error(result, f"{seeds}:3", "not valid JSON")
    assert not out.exists()


@pytest.mark.cli
def test_cli_output_under_a_regular_file_exits_2_naming_out(tmp_path):
    # chmod does not stop root, but no one can make a folder under a regular file.
    blocker = write(tmp_path / "afile", "not a folder\n")
    out = blocker / "run"
    # resolve_model only checks that config.json and a tokenizer file exist, and out= fails before any engine would
    # start.
    model = tmp_path / "model"
    model.mkdir()
    write(model / "config.json", "{}")
    write(model / "tokenizer.json", "{}")
    result = run_cli("synth", "synth/recipes/demo.yaml", f"backend.model={model}", "seeds.sample=2", f"out={out}")
    assert_cli_error(result, f"out={out}", "cannot write")
    assert blocker.read_text() == "not a folder\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "model"]


@pytest.mark.cli
@pytest.mark.parametrize(
    "override,expected",
    [
        ("backend.model=/nonexistent/model", ["backend.model=/nonexistent/model"]),
        ("backend.kind=vlm", ["backend.kind=vlm", "'vllm'", "'openai'"]),  # before the seeds stage is written
        ("backend.model=a: b: c", ["backend.model=a: b: c"]),
    ],
    ids=["nonexistent_model_path", "unknown_backend_kind", "override_not_valid_yaml"],
)
def test_cli_bad_override_exits_2_naming_it_and_writes_nothing(tmp_path, override, expected):
    out = tmp_path / "run"
    result = run_cli("synth", "synth/recipes/demo.yaml", override, "seeds.sample=2", f"out={out}")
    assert_cli_error(result, *expected)
    assert not out.exists()


# --- choices, bounds and each section's check() -----------------------------------------------------


def test_a_knob_is_a_dataclass_field_that_records_its_help_choices_and_bounds():
    from dataclasses import fields

    from synth.recipe import BackendConfig, DialoguesConfig

    kind = next(f for f in fields(BackendConfig) if f.name == "kind")
    assert kind.default == "vllm" and kind.metadata["choices"] == ("vllm", "openai") and kind.metadata["help"]
    share = next(f for f in fields(DialoguesConfig) if f.name == "multi_turn_share")
    assert (share.metadata["min"], share.metadata["max"], share.metadata["choices"]) == (0, 1, None)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("backend:\n  kind: tpu\n", "backend.kind=tpu: use 'vllm' or 'openai'"),
        ("dialogues:\n  modes: [R, X]\n", "dialogues.modes=['R', 'X']: use R and/or G"),
        ("dialogues:\n  multi_turn_share: 1.5\n", "dialogues.multi_turn_share=1.5: use a value from 0 to 1"),
        ("chunk_size: 0\n", "chunk_size=0: at least 1"),
    ],
)
def test_a_file_value_outside_the_choices_or_bounds_names_the_file_the_key_and_what_to_use(tmp_path, text, expected):
    path = write(tmp_path / "r.yaml", text)
    assert recipe_error(path) == f"{path}: {expected}"


@pytest.mark.parametrize(
    "base, expected",
    [
        ({"curate": {"chinese": "klingon"}}, "curate.chinese=klingon: use 'keep', 'simplified' or 'traditional'"),
        ({"seeds": {"sample": -1}}, "seeds.sample=-1: at least 0"),
    ],
)
def test_a_base_value_outside_the_choices_or_bounds_is_refused(base, expected):
    assert recipe_error(None, base=base) == f"recipe of the run: {expected}"


@pytest.mark.parametrize(
    "override, expected",
    [
        ("executor=slurm", "executor=slurm: use 'local' or 'ray'"),
        ("dialogues.order=random", "dialogues.order=random: use 'character' or 'shuffled'"),
        ("dialogues.modes=[X]", "dialogues.modes=['X']: use R and/or G"),
        ("profiles.top_p=2", "profiles.top_p=2.0: use a value from 0 to 1"),
        ("dialogues.max_attempts=0", "dialogues.max_attempts=0: at least 1"),
    ],
)
def test_an_override_outside_the_choices_or_bounds_is_refused_starting_with_the_key(override, expected):
    assert recipe_error(None, [override]) == expected


def test_a_list_knob_takes_its_choices_in_any_order_and_an_in_bounds_value_loads():
    recipe = load_recipe(None, ["dialogues.modes=[G, R]", "profiles.top_p=1", "seeds.sample=0"])
    assert recipe.dialogues.modes == ["G", "R"] and recipe.profiles.top_p == 1.0


def test_check_sees_the_values_after_every_override(tmp_path):
    path = write(tmp_path / "r.yaml", "curate:\n  min_chars: 50\n  max_chars: 10\ndialogues:\n  user_turns: '5-2'\n")
    recipe = load_recipe(path, ["curate.max_chars=60", "dialogues.user_turns=2-3"])  # both fixed before check()
    assert (recipe.curate.max_chars, recipe.dialogues.user_turns) == (60, "2-3")
    message = recipe_error(path, ["dialogues.user_turns=2-3"])
    assert message == "curate.min_chars=50, curate.max_chars=10: give min_chars ≤ max_chars, e.g. curate.max_chars=50"


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["dialogues.modes=[]"], "dialogues.modes=[]: use R and/or G"),
        (["dialogues.user_turns=5-2"], "dialogues.user_turns='5-2': ranges need 1 ≤ lo ≤ hi and weights ≥ 0"),
        (["dialogues.user_turns=2-3:0"], "dialogues.user_turns='2-3:0': the weights sum to 0"),
        (["curate.min_turns=3", "curate.max_turns=2"], "curate.min_turns=3, curate.max_turns=2: give min_turns"),
        (["split.train=0", "split.validation=0", "split.heldout=0"], "split.train=0.0, split.validation=0.0, split"),
        (["split.validation=-0.1"], "split.validation=-0.1: at least 0"),
        (
            ["executor=ray", "backend.kind=openai"],
            "executor=ray runs vLLM replicas; backend.kind=openai scales on its server: use executor=local",
        ),
    ],
)
def test_each_section_check_refuses_with_its_message(overrides, expected):
    assert recipe_error(None, overrides).startswith(expected)


def test_check_recipe_covers_a_recipe_built_or_changed_in_code():
    from synth.config import check_recipe
    from synth.recipe import Recipe

    recipe = Recipe()
    check_recipe(recipe)
    recipe.backend.batch_size = 0
    with pytest.raises(DramatisError, match=r"^backend\.batch_size=0: at least 1$"):
        check_recipe(recipe)
    recipe.backend.batch_size, recipe.dialogues.user_turns = 1, "x"
    with pytest.raises(DramatisError, match=r"^dialogues\.user_turns='x': write 'lo-hi:weight,...'"):
        check_recipe(recipe)


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["train.method=ful"], "train.method=ful: use 'lora' or 'full'"),
        (["train.loss=nonsense"], "train.loss=nonsense: use 'all_turns', 'last_turn' or 'flags'"),
        (["model.dtype=fp8"], "model.dtype=fp8: use 'auto', 'float32' or 'bfloat16'"),
        (["train.epochs=0", "train.max_steps=0"], "train.epochs or train.max_steps must be > 0"),
        (["train.warmup_ratio=1"], "train.warmup_ratio=1.0: a share of the steps, 0 ≤ x < 1"),
        (["grid=[{overrides: []}]"], "grid[0]: write it as {name: ..., overrides: [key=value, ...]}"),
    ],
)
def test_train_recipe_checks_refuse_with_their_messages(overrides, expected):
    from train.recipe import load_train_recipe

    with pytest.raises(DramatisError) as exc:
        load_train_recipe(None, overrides)
    assert str(exc.value) == expected
    assert load_train_recipe(None, ["train.epochs=0", "train.max_steps=5"]).train.max_steps == 5


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["benchmarks=[mmlu]"], "benchmarks=['mmlu']: use heldout and/or personagym"),
        (["benchmarks=[]"], "benchmarks=[]: use heldout and/or personagym"),
        (["models=[]"], "models: give at least one model under test, e.g. models=[base=gemma3-270m]"),
        (["judge.models=[a=x, a=y]"], "judge.models: the label 'a' is used twice; give each entry its own label="),
        (["judge.rubrics=[vibes]"], "judge.rubrics=['vibes']: use persona and/or roleplay"),
        (["judge.backend.kind=grpc"], "judge.backend.kind=grpc: use 'vllm' or 'openai'"),
        (["personagym.persona=novel"], "personagym.persona=novel: use 'profile' or 'line'"),
        (["responder.seeds=0"], "responder.seeds=0: at least 1"),
    ],
)
def test_eval_recipe_checks_refuse_with_their_messages(overrides, expected):
    from eval.recipe import load_eval_recipe

    with pytest.raises(DramatisError) as exc:
        load_eval_recipe(None, overrides)
    assert str(exc.value) == expected
    assert load_eval_recipe(None, ["judge.models=[]", "judge.rubrics=[]"]).judge.models == []  # judge-free
