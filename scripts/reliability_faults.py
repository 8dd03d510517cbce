"""Reliability suite, backend faults and secrets: the OpenAI backend against a server that fails 30% of requests,
and a run's folder scanned for the API key and the Hugging Face token.

    .venv/bin/python scripts/reliability.py only=faults,secrets             # 300 requests per batch case
    .venv/bin/python scripts/reliability.py only=faults,secrets --reduced   # 100 (tests/test_reliability_faults.py)

The server is scripts/faulty_server.py: HTTP 429, HTTP 500, replies slower than the backend's timeout and
connections dropped without a byte, decided by a hash of the request body and its attempt number (repeatable).
No model is needed: the server echoes the last user message.

Faults: every request ends completed (with the text it asked for) or rejected with a reason, never as a silent
empty; retries per request stay within max_retries and are reported; through the `dramatis` command a run whose
calls fail ends (exit 0) with every seed accounted for, kept or rejected with a reason.
Secrets: a run through the command with OPENAI_API_KEY and HF_TOKEN set (the server must have seen the key, else
the scan proves nothing), then `dramatis publish --dry-run`; no file of the run folder holds either secret, raw,
without its prefix, as its random part alone, or base64-encoded; the manifests name the key's variable only.
"""

import base64
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from scripts import cli_process
from scripts.faulty_server import FAULTS, FaultyServer
from scripts.reliability_case import Case

# The backend's timeout sits below the server's "slow" reply, so a slow reply is a timeout; generous
# enough that an ordinary reply on a loaded 2-core machine is not one.
TIMEOUT_S, SLOW_S = 1.0, 2.0
FAULT_NAMES = {"429": "429", "500": "500", "slow": "timeout", "drop": "drop"}


def _cli(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """`dramatis ARGS` with `env` added to this process's environment."""
    return cli_process.run(*args, timeout=timeout, env={**os.environ, **(env or {})})


def _faults(server: FaultyServer) -> str:
    seen = server.outcomes()
    return " / ".join(f"{FAULT_NAMES[f]} {seen[f]}" for f in FAULTS)


def _reason(error: str) -> str:
    """'gave up after 2 attempts: Transient: HTTP 429' -> 'HTTP 429'; '...: ReadTimeout: ' -> 'ReadTimeout'."""
    kind, _, message = error.partition(" attempts: ")[2].partition(": ")
    return message if kind == "Transient" else kind


def _histogram(retries: list[int]) -> str:
    counts = Counter(retries)
    return " ".join(f"{k}:{counts[k]}" for k in sorted(counts))


# ------------------------------------------------------------------------------------------ faults


def _batch_case(n: int, max_retries: int, exhaust: bool) -> Case:
    """n requests through OpenAIBackend against 30% faults; `exhaust`: too few retries, so some must give up."""
    from synth.backend import ChatRequest
    from synth.openai_backend import OpenAIBackend

    texts = [f"reliability request {i}" for i in range(n)]
    requests = [
        ChatRequest(messages=[{"role": "user", "content": t}], seed=i, max_tokens=16) for i, t in enumerate(texts)
    ]
    with FaultyServer(fault_percent=30, faulty_attempts=3, slow_s=SLOW_S) as server:
        backend = OpenAIBackend(
            "fake", server.url, max_retries=max_retries, backoff_s=0.01, timeout_s=TIMEOUT_S, concurrency=16
        )
        began = time.monotonic()
        results = backend.generate(requests)
        seconds = time.monotonic() - began
        faults = server.outcomes()
        fault_text = _faults(server)
        attempts = dict(server.attempts_by_prompt)
    done = [r.finish_reason in ("stop", "length") and bool(r.text.strip()) and not r.error for r in results]
    completed = [r for r, ok in zip(results, done, strict=False) if ok]
    rejected = [r for r in results if r.finish_reason == "error" and r.error.strip() and not r.text]
    # Anything else is a silent empty (or a result that is neither): the thing that must never happen.
    empty = len(results) - len(completed) - len(rejected)
    wrong = sum(r.text != "echo: " + t for t, r, ok in zip(texts, results, done, strict=False) if ok)
    retries = [r.retries for r in results]
    over = sum(not 0 <= k <= max_retries for k in retries)
    # The server saw each request at least once and no more often than the attempts the backend counted.
    unaccounted = sum(not 1 <= attempts.get(t, 0) <= r.retries + 1 for t, r in zip(texts, results, strict=False))
    gave_up = sum(f"gave up after {max_retries + 1} attempts" in r.error for r in rejected)
    reasons = Counter(_reason(r.error) for r in rejected)
    observed = (
        f"{len(completed)} completed, {len(rejected)} rejected, {empty} empty; faults {fault_text}; "
        f"retries per request max {max(retries)}, mean {sum(retries) / len(retries):.2f} "
        f"(histogram {_histogram(retries)}); {seconds:.1f} s"
    )
    if rejected:
        observed += "; reasons " + ", ".join(f"{k} {v}" for k, v in reasons.most_common())
    if wrong or unaccounted or over:
        observed += f"; {wrong} wrong texts, {unaccounted} attempts unaccounted, {over} over max_retries"
    passed = (
        len(results) == n
        and empty == 0
        and wrong == 0
        and over == 0
        and unaccounted == 0
        and all(faults[f] > 0 for f in FAULTS)
    )
    if exhaust:
        case = f"{n} requests, 30% faults, max_retries={max_retries} (too few)"
        expected = f"each completed or rejected with a reason (gave up after {max_retries + 1} attempts); none empty"
        passed = passed and len(rejected) > 0 and gave_up == len(rejected)
    else:
        case = f"{n} requests, 30% faults (429/500/timeout/drop), max_retries={max_retries}"
        expected = f"all completed with their text, 0 empty, every fault kind seen, retries <= {max_retries}"
        passed = passed and len(completed) == n
    return Case(case=case, expected=expected, observed=observed, passed=passed, part="faults")


def _shards(folder: Path, rejects: bool = False) -> list[dict]:
    from synth.runner import shard_paths
    from synth.shards import read_shard

    return [row for path in shard_paths(folder, rejects=rejects) for row in read_shard(path).to_pylist()]


def _cli_case(out: Path, sample: int) -> Case:
    """The whole command against 30% faults: the echo replies are no profile JSON, so profiles are rejected;
    with max_retries=1 some requests also exhaust their retries (backend_error). Every seed must be accounted for."""
    run = out / "cli-run"
    max_retries, max_attempts = 1, 2
    with FaultyServer(fault_percent=30, faulty_attempts=3, slow_s=SLOW_S) as server:
        began = time.monotonic()
        proc = _cli(
            "synth",
            "synth/recipes/demo.yaml",
            "backend.kind=openai",
            f"backend.base_url={server.url}",
            "backend.model=fake",
            f"seeds.sample={sample}",
            "instructions.sample=1",
            f"profiles.max_attempts={max_attempts}",
            f"backend.max_retries={max_retries}",
            f"backend.timeout_s={TIMEOUT_S}",
            "backend.backoff_s=0.01",
            f"out={run}",
        )
        seconds = time.monotonic() - began
        fault_text = _faults(server)
    case = f"`dramatis synth` (openai backend), 30% faults, {sample} seeds, max_retries={max_retries}"
    expected = "exit 0; every seed kept or rejected with a reason; retries reported, <= max_retries per request"
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout)[-400:].replace("\n", " | ")
        return Case(
            case=case, expected=expected, observed=f"exit {proc.returncode}: ...{tail}", passed=False, part="faults"
        )
    manifest = json.loads((run / "profiles" / "manifest.json").read_text())
    counters = manifest["counters"]
    dropped = {k.removeprefix("dropped_"): v for k, v in counters.items() if k.startswith("dropped_")}
    kept, rejects = _shards(run / "profiles"), _shards(run / "profiles", rejects=True)
    seeds = {row["id"] for row in _shards(run / "seeds")}
    accounted = {row["persona_id"] for row in kept} | {json.loads(r["record"])["id"] for r in rejects}
    silent = sum(not (r["reason"] and r["detail"]) for r in rejects)
    requests, retries = counters.get("requests_generated", 0), counters.get("backend_retries", 0)
    observed = (
        f"exit 0 in {seconds:.0f} s; {len(seeds)} seeds: {counters.get('kept', 0)} kept, "
        + ", ".join(f"{k} {v}" for k, v in sorted(dropped.items()))
        + f"; {silent} rejects without a reason; "
        f"{requests} requests, {retries} retries (<= {max_retries * requests}), "
        f"{counters.get('attempt_failed_backend_error', 0)} attempts gave up; faults {fault_text}"
    )
    passed = (
        manifest["complete"]
        and len(seeds) == sample
        and accounted == seeds
        and counters.get("kept", 0) + sum(dropped.values()) == sample == len(kept) + len(rejects)
        and silent == 0
        and Counter(r["reason"] for r in rejects) == Counter(dropped)
        and requests > 0
        and retries <= max_retries * requests
        and "backend_retries" in counters
    )
    return Case(case=case, expected=expected, observed=observed, passed=passed, part="faults")


def fault_cases(out: Path, reduced: bool) -> Iterator[Case]:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    n = 100 if reduced else 300
    yield _batch_case(n, max_retries=4, exhaust=False)
    yield _batch_case(n, max_retries=1, exhaust=True)
    yield _cli_case(out, 12 if reduced else 24)


# ------------------------------------------------------------------------------------------ secrets


class ProfileServer(FaultyServer):
    """The fault-free fake, answering a request with a JSON schema with an object that fits it (a profile, or a
    turn's {"text": ...}), so the run goes on to characters, dialogues, the dataset, the report and the publish
    folder: every kind of file a run writes gets scanned, not only rejects."""

    @staticmethod
    def completion(body: dict) -> dict:
        reply = FaultyServer.completion(body)
        schema = body.get("response_format", {}).get("json_schema", {}).get("schema")
        asked = body["messages"][-1]["content"]
        digest = hashlib.sha256(json.dumps(body["messages"]).encode()).hexdigest()
        if schema is None or "text" in schema.get("properties", {}):
            # A turn: a plain line in the character's language (an echo of the prompt trips the quality checks).
            chinese = any("\u4e00" <= ch <= "\u9fff" for ch in body["messages"][0]["content"])
            lines = ZH_LINES if chinese else EN_LINES
            text = lines[int(digest, 16) % len(lines)]
            content = text if schema is None else json.dumps({"text": text}, ensure_ascii=False)
        else:
            from personas.profiles import EXAMPLES

            _, _, profile = EXAMPLES[1] if "Simplified Chinese" in asked else EXAMPLES[0]
            persona = asked.partition("\n")[0].removeprefix("Persona: ")
            surname = "".join(chr(ord("a") + int(c, 16) % 26) for c in digest[:6]).capitalize()
            first = profile["name"].split()[0] if " " in profile["name"] else profile["name"]
            content = json.dumps(
                {**profile, "name": f"{first} {surname}", "experience": (persona + " " + profile["experience"])[:600]},
                ensure_ascii=False,
            )
        reply["choices"][0]["message"]["content"] = content
        return reply


EN_LINES = [
    "Well now, that takes me back to the storm winter of eighty-two, when the whole harbour held its breath.",
    "Here's the thing of it: you learn more from one honest mistake than from ten lucky guesses.",
    "Sit down a while and I will tell you how it really went, not how the papers wrote it.",
]
ZH_LINES = [
    "莫着急，先喝口茶，这件事我慢慢给你讲。",
    "巴适得板！我年轻的时候也遇到过一模一样的事情。",
    "你这个问题问得好，我们成都人最喜欢摆这种龙门阵。",
]


def _needles(secret: str, prefix: str) -> dict[str, bytes]:
    """What a leak of `secret` could look like: raw, without its prefix, its random part alone, and base64 at
    each of the three byte alignments it could sit at inside a longer encoded string."""
    raw = secret.encode()
    needles = {"raw": raw, f"without '{prefix}'": raw.removeprefix(prefix.encode()), "random part": raw[-32:]}
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw)
        start = 4 if shift else 0  # the first quantum mixes in the bytes before the secret
        end = len(encoded) - (4 if (shift + len(raw)) % 3 else 0)  # the last one those after it
        needles[f"base64/{shift}"] = encoded[start:end]
        needles[f"base64url/{shift}"] = base64.urlsafe_b64encode(b"\0" * shift + raw)[start:end]
    return needles


def _scan(run: Path, needles: dict[str, bytes]) -> tuple[int, list[str]]:
    files = [p for p in run.rglob("*") if p.is_file()]
    hits = [
        f"{p.relative_to(run)} ({kind})" for p in files for kind, needle in needles.items() if needle in p.read_bytes()
    ]
    return len(files), hits


def secret_cases(out: Path, reduced: bool) -> Iterator[Case]:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    run = out / "run"
    key = "sk-dramatis-secret-" + secrets.token_hex(16)
    token = "hf_dramatissecret" + secrets.token_hex(16)
    env = {"OPENAI_API_KEY": key, "HF_TOKEN": token}
    with ProfileServer(fault_percent=0) as server:
        synth = _cli(
            "synth",
            "synth/recipes/demo.yaml",
            "backend.kind=openai",
            f"backend.base_url={server.url}",
            "backend.model=fake",
            f"seeds.sample={6 if reduced else 12}",
            "instructions.sample=1",
            "dedup.profiles=false",
            f"backend.timeout_s={TIMEOUT_S * 10}",
            f"out={run}",
            env=env,
        )
        publish = _cli("publish", str(run), "--repo", "user/name", "--dry-run", env=env)
        used = f"Bearer {key}" in server.authorizations
        every = server.authorizations == {f"Bearer {key}"}
        hits = server.hits()
    console = synth.stdout + synth.stderr + publish.stdout + publish.stderr
    ran = synth.returncode == 0 and publish.returncode == 0 and used and (run / "hub" / "README.md").exists()
    info = json.loads((run / "dataset" / "dataset_info.json").read_text()) if ran else {}
    rows = sum(split["rows"] for split in info.get("splits", {}).values())
    setup = (
        f"synth exit {synth.returncode}, publish --dry-run exit {publish.returncode}; the server saw the key "
        f"in {'every' if every else 'some' if used else 'NO'} request ({hits} requests); dataset {rows} rows"
    )
    if not ran:
        tail = (synth.stderr + publish.stderr)[-300:].replace("\n", " | ")
        yield Case(
            case="secrets: run with OPENAI_API_KEY and HF_TOKEN set",
            expected="the run and the dry run finish, the key is sent",
            observed=f"{setup}: ...{tail}",
            passed=False,
            part="secrets",
        )
        return
    yield Case(
        case="secrets: run with OPENAI_API_KEY and HF_TOKEN set",
        expected="the run and the dry run finish, the key is sent",
        observed=setup,
        passed=True,
        part="secrets",
    )
    for what, secret, prefix in (("API key", key, "sk-"), ("HF token", token, "hf_")):
        needles = _needles(secret, prefix)
        count, found = _scan(run, needles)
        shown = [kind for kind, needle in needles.items() if needle.decode(errors="replace") in console]
        observed = f"absent from all {count} files" if not found else f"FOUND in {len(found)}: {', '.join(found[:4])}"
        observed += (
            "; absent from the console output" if not shown else f"; IN THE CONSOLE OUTPUT ({', '.join(shown)})"
        )
        yield Case(
            case=f"{what} in run folder",
            expected=f"absent from all {count} files (raw, without '{prefix}', "
            "random part, base64) and from the output",
            observed=observed,
            passed=not found and not shown,
            part="secrets",
        )
    manifests = sorted(run.rglob("manifest.json"))
    named = [json.loads(p.read_text())["recipe"]["backend"].get("api_key_env") for p in manifests]
    values = sum(key in p.read_text() for p in manifests)
    yield Case(
        case="manifests record the key's variable, not the key",
        expected=f"api_key_env = OPENAI_API_KEY in all {len(manifests)} manifests",
        observed=f"api_key_env = {', '.join(sorted({str(n) for n in named}))} in {named.count('OPENAI_API_KEY')} of "
        f"{len(manifests)}; key value in {values}",
        passed=bool(manifests) and named.count("OPENAI_API_KEY") == len(manifests) and values == 0,
        part="secrets",
    )


if __name__ == "__main__":
    from scripts.reliability import table

    reduced = "--reduced" in sys.argv
    base = Path("reliability-out")
    print(table(list(fault_cases(base / "faults", reduced)) + list(secret_cases(base / "secrets", reduced))))
