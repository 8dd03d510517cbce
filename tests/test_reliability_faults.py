"""The backend-fault and secrets parts of the reliability suite in their CI form, against the
fault-injecting fake of the OpenAI API (scripts/faulty_server.py); no model needed.

Faults: 30% of attempts fail (429, 500, timeouts, dropped connections); every request ends completed or rejected
with a reason, never empty; retries per request stay within max_retries; a run through `dramatis synth` accounts
for every seed. Secrets: neither the API key nor the HF token lands in any file of a run folder."""

import pytest

from scripts.reliability import table
from scripts.reliability_faults import fault_cases, secret_cases


@pytest.mark.cli
def test_requests_against_a_server_failing_30_percent_end_completed_or_rejected_with_a_reason(tmp_path):
    cases = list(fault_cases(tmp_path / "faults", reduced=True))
    assert len(cases) == 3, "\n" + table(cases)
    assert all(c.passed for c in cases), "\n" + table(cases)


@pytest.mark.cli
def test_api_key_and_hf_token_never_reach_a_file_of_the_run(tmp_path):
    cases = list(secret_cases(tmp_path / "secrets", reduced=True))
    assert len(cases) == 4, "\n" + table(cases)
    assert all(c.passed for c in cases), "\n" + table(cases)


def test_the_secret_scan_finds_a_secret_raw_without_its_prefix_and_base64_encoded_at_any_offset(tmp_path):
    """The scan's own control: a scan that finds nothing must be one that would have found a leak."""
    import base64

    from scripts.reliability_faults import _needles, _scan

    secret = "sk-dramatis-secret-" + "0123456789abcdef" * 2
    needles = _needles(secret, "sk-")
    leaks = {"raw.json": f'{{"key": "{secret}"}}'.encode(), "cut.txt": b"Bearer " + secret[3:].encode()}
    for shift in range(3):  # the secret inside a longer base64 string, at each byte alignment
        leaks[f"b64-{shift}.txt"] = base64.b64encode(b"x" * shift + b"Authorization: Bearer " + secret.encode() + b"!")
    for name, data in leaks.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "clean.txt").write_text("OPENAI_API_KEY")
    count, hits = _scan(tmp_path, needles)
    assert count == len(leaks) + 1
    assert {hit.split(" ")[0] for hit in hits} == set(leaks), hits
