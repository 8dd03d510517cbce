"""The loss curve's one-line reading (train/curves.py) on planted metric histories whose verdict is known."""

import pytest

from train.curves import reading, series, write_curves


def falling(start: float, end: float, steps: int) -> list[tuple[int, float]]:
    """Train loss falling evenly from start to end over steps 1..steps."""
    return [(s, start + (end - start) * (s - 1) / (steps - 1)) for s in range(1, steps + 1)]


def flat(value: float, steps: int) -> list[tuple[int, float]]:
    return [(s, value) for s in range(1, steps + 1)]


# `make train` on the demo dataset (9 rows, batch 4, 5 epochs: an evaluation at step 0 and once per epoch): train
# loss fell to 0.83 while validation loss, lowest at step 6, rose to 2.675. The reading said "not converged … more
# epochs or a higher learning rate".
DEMO_TRAIN = falling(3.05, 0.83, 15)
DEMO_EVALS = [(0, 3.21), (3, 2.78), (6, 2.60), (9, 2.62), (12, 2.65), (15, 2.675)]


def test_validation_rising_since_its_minimum_is_over_fitting_even_while_train_loss_falls():
    line = reading(DEMO_TRAIN, DEMO_EVALS, 15)
    assert line.startswith("over-fitting: validation loss has risen since its minimum 2.600 at step 6")
    assert "2.675 at step 15" in line and "the last 3 of 6 evaluations" in line
    assert "stop near step 6 or add training data" in line
    assert "more epochs" not in line and "learning rate" not in line
    # The train-loss rule alone would have said the opposite: the validation trend is what decides.
    assert reading(DEMO_TRAIN, [], 15).startswith("not converged")


def test_the_demo_history_reads_the_same_through_write_curves(tmp_path):
    history = [{"step": s, "loss": v} for s, v in DEMO_TRAIN] + [{"step": s, "eval_loss": v} for s, v in DEMO_EVALS]
    history.sort(key=lambda e: e["step"])
    info = write_curves(history, tmp_path)
    assert info["reading"].startswith("over-fitting: validation loss has risen since its minimum 2.600 at step 6")
    assert f"Reading: {info['reading']}\n" in (tmp_path / "metrics.md").read_text()
    assert info["final_train_loss"] == pytest.approx(0.83) and info["min_eval_loss"] == 2.60
    assert series(history, "eval_loss") == DEMO_EVALS


@pytest.mark.parametrize(
    "evals",
    [
        [(0, 3.2), (3, 2.8), (6, 2.7), (9, 2.65), (12, 2.61), (15, 2.60)],  # still falling
        [(0, 3.2), (3, 2.8), (6, 2.7), (9, 2.6), (12, 2.5), (15, 2.51)],  # the minimum one evaluation back: noise
        [(0, 3.2), (3, 2.6), (6, 2.61), (9, 2.605)],  # a third back, but within 1% of the minimum: flat
        [(0, 3.2), (15, 3.3)],  # two evaluations: only the 10% rule reads them
    ],
)
def test_validation_that_falls_or_only_wobbles_leaves_the_train_reading_in_charge(evals):
    assert reading(DEMO_TRAIN, evals, 15).startswith("not converged: train loss still fell")


def test_a_short_steady_rise_of_three_evaluations_is_read():
    line = reading(DEMO_TRAIN, [(0, 3.0), (5, 2.6), (10, 2.7)], 15)
    assert line.startswith("over-fitting: validation loss has risen since its minimum 2.600 at step 5")


def test_a_validation_loss_more_than_a_tenth_above_its_minimum_is_over_fitting():
    line = reading(flat(1.0, 12), [(0, 3.0), (4, 2.0), (8, 2.1), (12, 2.3)], 12)
    assert line == (
        "over-fitting: validation loss rose from 2.000 (step 4) to 2.300 (step 12), more than 10%: stop near step 4"
    )


def test_train_loss_near_zero_in_the_first_third_is_over_fitting():
    train = [(s, 2.0 if s < 3 else 0.01) for s in range(1, 13)]
    assert reading(train, [], 12) == (
        "over-fitting: train loss 0.010 ≤ 0.05 already at step 3 of 12 (within the first third): "
        "cut the epochs to about a third"
    )
    # Near 0 only after the first third is not the early-memorization rule.
    late = [(s, 2.0 if s < 9 else 0.01) for s in range(1, 13)]
    assert not reading(late, [], 12).startswith("over-fitting")


def test_a_loss_still_falling_is_not_converged_and_a_flat_one_converged():
    assert reading(falling(3.0, 1.0, 16), [(0, 3.0), (8, 2.0), (16, 1.5)], 16) == (
        "not converged: train loss still fell 31% over the last quarter of logged steps (rule: > 5%): "
        "more epochs or a higher learning rate"
    )
    settled = flat(1.2, 12) + [(s, 1.22) for s in range(13, 17)]
    assert reading(settled, [(0, 3.0), (16, 1.5)], 16) == (
        "converged: train loss changed +2% over the last quarter (rule: within 5%), no sign of over-fitting"
    )


def test_fewer_than_eight_logged_steps_are_not_read():
    assert reading(falling(3.0, 1.0, 7), DEMO_EVALS, 7) == "too short to read: 7 logged steps (needs 8)"
