"""The crash part of the reliability suite in its CI form: an uninterrupted run of a small recipe on the
tiny model, then three runs SIGKILLed (vLLM's engine processes too) early, in the middle and late, each relaunched:
the rows equal the uninterrupted run's, no id twice, no finished request generated again, no temporary file left.
The full form (20 kills) is `.venv/bin/python scripts/reliability.py only=crash`."""

import pytest

from scripts.reliability import table
from scripts.reliability_crash import crash_cases

# A reference run and three killed runs relaunched, each a `dramatis synth` on the tiny model: minutes.
pytestmark = [pytest.mark.engine, pytest.mark.cli, pytest.mark.slow]


def test_runs_killed_at_random_moments_and_relaunched_end_with_the_uninterrupted_rows(tiny_model, tmp_path):
    cases = list(crash_cases(tmp_path / "crash", reduced=True))
    assert len(cases) == 4, "\n" + table(cases)  # the reference run, then 3 kills
    assert all(c.passed for c in cases), "\n" + table(cases)
