"""The crash part of the reliability suite in its CI form: an uninterrupted run of a small recipe on the
tiny model, then three runs SIGKILLed (vLLM's engine processes too) early, in the middle and late, and two
interrupted with Ctrl-C as a terminal sends it (SIGINT to the process group) in profiles and in dialogues, each
relaunched: the rows equal the uninterrupted run's, no id twice, no finished request generated again, no temporary
file left; an interrupted run exits within 10 s with one line and starts no later stage.
The full form (20 kills, 9 interrupts) is `.venv/bin/python scripts/reliability.py only=crash`."""

import pytest

from scripts.reliability import table
from scripts.reliability_crash import crash_cases

# A reference run and five stopped runs relaunched, each a `dramatis synth` on the tiny model: minutes.
pytestmark = [pytest.mark.engine, pytest.mark.cli, pytest.mark.slow]


def test_runs_killed_at_random_moments_and_relaunched_end_with_the_uninterrupted_rows(tiny_model, tmp_path):
    cases = list(crash_cases(tmp_path / "crash", reduced=True))
    assert len(cases) == 6, "\n" + table(cases)  # the reference run, then 3 kills and 2 interrupts
    assert [c.part for c in cases].count("interrupt") == 2
    assert all(c.passed for c in cases), "\n" + table(cases)
