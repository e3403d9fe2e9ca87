"""The row-loader benchmark runs small on MUTAG and synthetic token ids and reports both loaders."""

import pytest

from experiments.bench import row_loaders

pytestmark = pytest.mark.slow


def test_both_loaders_are_timed_side_by_side_for_graph_and_text_rows():
  report = row_loaders.run(tu_dir=None, small=True)
  assert report["graphs"]["dataset"] == "MUTAG" and report["graphs"]["rows"] == 4
  for part in ("graphs", "text"):
    for loader in ("tf", "numpy"):
      timing = report[part][loader]
      assert 0 < timing["first_element_ms"] <= timing["window_ms"], (part, loader)
    ratio = report[part]["tf"]["window_ms"] / report[part]["numpy"]["window_ms"]
    assert report[part]["window_speedup_numpy_over_tf"] == pytest.approx(ratio)
