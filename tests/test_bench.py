"""scripts/bench.py's distilabel row, without distilabel: CI never builds its venv (minutes over the network), so
these test what runs without it — that both sides get the same job, and that a venv which cannot be built
makes the row say so while the engine's side is still measured."""

import ast
import importlib.util
from pathlib import Path

from scripts import bench, bench_distilabel
from scripts.bench_distilabel_job import BATCH_SIZE, MAX_TOKENS, TEMPERATURE, job_records

ROOT = Path(__file__).resolve().parent.parent


def test_both_sides_get_the_same_job():
    records = job_records(50)
    prompts = bench_distilabel.noop_prompts(50)
    assert [(p.id, p.text) for p in prompts] == [(r["id"], r["instruction"]) for r in records]
    assert len({r["instruction"] for r in records}) == 50  # distinct prompts: no side can dedup its way ahead
    # What the engine sends is what distilabel's TextGeneration makes of a record (its template is
    # "{{ instruction }}", one user turn), with the same sampling settings.
    sent = bench.request(prompts[7], MAX_TOKENS)
    assert sent.messages == [{"role": "user", "content": records[7]["instruction"]}]
    assert (sent.max_tokens, sent.temperature) == (64, 0.8) == (MAX_TOKENS, TEMPERATURE)


def test_job_script_is_standalone_and_distilabel_stays_out_of_the_project():
    tree = ast.parse((ROOT / "scripts" / "bench_distilabel_job.py").read_text())
    top = {
        alias.name.split(".")[0]
        for node in tree.body
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module)])
    }
    assert top <= {
        "json",
        "resource",
        "sys",
        "time",
    }  # distilabel only under `if __name__ == "__main__"` and inside run()
    assert "distilabel" not in (ROOT / "pyproject.toml").read_text()
    assert importlib.util.find_spec("distilabel") is None


def test_row_says_the_venv_could_not_be_built(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_distilabel, "VENV_BUILDER", str(tmp_path / "no-such-python3"))
    result = bench_distilabel.bench_distilabel(300, repeats=1, out=tmp_path)
    assert result["error"].startswith("venv could not be built: ") and "no-such-python3" in result["error"]
    assert result["records"] == 300 and result["batch_size"] == BATCH_SIZE and result["ours_records_per_s"] > 0
    assert "ratio" not in result and "distilabel_records_per_s" not in result
    name, measured, ratio, goal = bench_distilabel.distilabel_row(result)
    assert name == "engine overhead vs distilabel, no-op job" and ratio == "n/a" and goal == "ours / distilabel"
    assert "records/s; distilabel: venv could not be built: " in measured
    # The engine's side ran for real: every record generated (cache cold), one shard, one manifest.
    stage = tmp_path / "distilabel" / "ours" / "stage"
    assert (stage / "manifest.json").is_file() and (stage / "data-00000.arrow").is_file()
    assert not (tmp_path / "distilabel-venv" / "dramatis-stamp.json").exists()


def test_row_with_both_sides():
    row = bench_distilabel.distilabel_row(
        {"records": 20000, "ours_records_per_s": 9000.4, "distilabel_records_per_s": 1500.0, "ratio": 6.0003}
    )
    assert row == (
        "engine overhead vs distilabel, no-op job",
        "9,000 vs 1,500 records/s (20,000 records)",
        "6.00",
        "ours / distilabel",
    )
