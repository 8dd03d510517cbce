"""distilabel's side of bench.py's "distilabel" row: the no-op job, timed from `pipeline.run()` to the Distiset it
returns.

N records (the same ones the engine's side gets, from `job_records`) go through distilabel 1.5.3's usual shape of a
generation job: `LoadDataFromDicts` → `TextGeneration` with `FreeLLM`, an LLM that answers "ok" to every input at
once, so what is measured is distilabel's own per-record cost: its step processes, queues, batch cache and the
dataset it writes. One JSON line goes to stdout last: {"records", "seconds", "records_per_s", "cpu_seconds", "rows",
"version"}; cpu_seconds counts this process and the step and manager processes it forked (all reaped by then).

It runs only inside the throwaway venv scripts/bench.py builds (distilabel is never a dependency of the project):

    bench-out/distilabel-venv/bin/python scripts/bench_distilabel_job.py RECORDS CACHE_DIR [BATCH_SIZE]

Imports: the standard library, and distilabel only when run as a script, so bench.py and the tests can import
`job_records` and the job's settings without distilabel installed.
"""

import json
import resource
import sys
import time

BATCH_SIZE = 4096  # records per batch, both sides: the engine's chunk size, distilabel's batch sizes
MAX_TOKENS = 64
TEMPERATURE = 0.8


def job_records(n: int) -> list[dict]:
    """The job's input, for both sides: distilabel reads "instruction", the engine makes a Prompt of id + text."""
    return [
        {"id": str(i), "instruction": f"Question {i}: what would you say to a stranger on a train?"} for i in range(n)
    ]


def cpu_seconds() -> float:
    """User + system CPU time of this process and of its children that have ended."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run(records: int, cache_dir: str, batch_size: int) -> dict:
    import distilabel
    from distilabel.pipeline import Pipeline
    from distilabel.steps import LoadDataFromDicts
    from distilabel.steps.tasks import TextGeneration

    data = job_records(records)
    with Pipeline(name="dramatis-noop", cache_dir=cache_dir) as pipeline:
        load = LoadDataFromDicts(data=data, batch_size=batch_size)
        generate = TextGeneration(
            llm=FreeLLM(generation_kwargs={"max_new_tokens": MAX_TOKENS, "temperature": TEMPERATURE}),
            input_batch_size=batch_size,
        )
        load >> generate
    began, cpu = time.perf_counter(), cpu_seconds()
    # use_cache=False: nothing from an earlier run may be reused (the engine's side starts with a cold request cache
    # in a fresh folder too). distilabel still writes what it always writes — each batch to its steps_data cache,
    # the batch manager's state, the leaf step's parquet files and the Distiset over them — as the engine writes
    # its request cache, shards and manifest: on both sides, what a user of a real job gets on disk.
    distiset = pipeline.run(use_cache=False)
    seconds, cpu = time.perf_counter() - began, cpu_seconds() - cpu
    rows = distiset["default"]["train"]
    assert len(rows) == records and rows[0]["generation"] == "ok", (len(rows), rows[0])
    return {
        "records": records,
        "seconds": seconds,
        "records_per_s": records / seconds,
        "cpu_seconds": cpu,
        "rows": len(rows),
        "version": distilabel.__version__,
    }


if __name__ == "__main__":
    from distilabel.models.llms.base import LLM

    # At module level of __main__, so the step processes distilabel forks can unpickle it.
    class FreeLLM(LLM):
        """Answers "ok" to every input at once: distilabel's analogue of the engine's FreeBackend."""

        @property
        def model_name(self) -> str:
            return "free"

        # distilabel reads the generation kwargs off this signature (a bare **kwargs would be a required one).
        def generate(self, inputs, num_generations: int = 1, max_new_tokens: int = 128, temperature: float = 1.0):
            return [
                {
                    "generations": ["ok"] * num_generations,
                    "statistics": {"input_tokens": [1] * num_generations, "output_tokens": [1] * num_generations},
                }
                for _ in inputs
            ]

    args = sys.argv[1:]
    result = run(int(args[0]), args[1], int(args[2]) if len(args) > 2 else BATCH_SIZE)
    print(json.dumps(result), flush=True)
