"""The checkpoint-cost benchmark measures both modes on one state and leaves verified steps."""

from experiments.bench import checkpoint_cost


def test_both_modes_are_measured_and_the_async_save_returns_before_it_is_finished(tmp_path):
  report = checkpoint_cost.measure(n=20_000, dim=256, bank_dtype="bfloat16", params_mib=8, saves=2,
                                   directory=str(tmp_path))
  for mode in ("sync", "async"):
    assert 0.0 < report[mode]["blocking_seconds"] <= report[mode]["total_seconds"]
  assert report["sync"]["total_seconds"] - report["sync"]["blocking_seconds"] < 0.01  # nothing left to wait for
  assert report["async"]["blocking_seconds"] < report["async"]["total_seconds"]
  assert report["bank_mib"] == round(20_000 * 256 * 2 / 2**20, 1)
