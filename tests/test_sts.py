"""Tests for STS evaluation: every file format (real files when ../shared/data is there, small written
ones always), the "all" setting, Spearman × 100, clear errors — and MiniLM's published STS-B figure."""

import os

import numpy as np
import pytest
from scipy import stats

from prosampler_jax.evaluation import sts

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "sts")
needs_shared = pytest.mark.skipif(not os.path.isdir(SHARED),
                                  reason="../shared/data/sts (real STS12–16 and SICK files) is absent")


def test_semeval_format_skips_unscored_rows_and_rejects_malformed_ones(tmp_path):
  path = tmp_path / "x.test.tsv"
  path.write_text("4.4\tA man plays.\tA man is playing.\n\tunscored\tpair\n0.5\tCats.\tStocks fell.\n\n")
  pairs = sts.read_semeval_file(str(path))
  assert pairs.first == ["A man plays.", "Cats."] and pairs.scores.tolist() == [4.4, 0.5]
  path.write_text("4.4\tonly one sentence\n")
  with pytest.raises(ValueError, match=r"x.test.tsv:1: expected score<TAB>sent1<TAB>sent2"):
    sts.read_semeval_file(str(path))


def test_senteval_release_format_pairs_input_and_gold_files(tmp_path):
  folder = tmp_path / "STS" / "STS13-en-test"
  folder.mkdir(parents=True)
  (folder / "STS.input.FNWN.txt").write_text("a b\tc d\nno score\there\ne f\tg h\n")
  (folder / "STS.gs.FNWN.txt").write_text("3.2\n\n0.4\n")
  (subset,) = sts.read_semeval_year(str(tmp_path), 2013)
  assert subset.name == "sts13/FNWN" and subset.first == ["a b", "e f"]
  assert subset.scores.tolist() == [3.2, 0.4]
  (folder / "STS.gs.FNWN.txt").write_text("3.2\n")
  with pytest.raises(ValueError, match="has 1 lines but .* has 3"):
    sts.read_semeval_year(str(tmp_path), 2013)


def test_stsb_and_sick_formats(tmp_path):
  (tmp_path / "stsbenchmark").mkdir()
  (tmp_path / "stsbenchmark" / "sts-test.csv").write_text(
      "main-captions\tMSRvid\t2012test\t0024\t2.500\tA girl is styling her hair.\tA girl brushes her hair.\n"
      "main-news\theadlines\t2015\t0001\t0.0\tSaid \"no\".\tStocks.\textra\tfields\n")
  pairs = sts.read_stsb(str(tmp_path), "test")
  assert pairs.second == ["A girl brushes her hair.", "Stocks."] and pairs.scores.tolist() == [2.5, 0.0]
  (tmp_path / "sick2014").mkdir()
  (tmp_path / "sick2014" / "SICK_test_annotated.txt").write_text(
      "pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment\n"
      "6\tA boy \"plays\"\tKids play\t3.3\tNEUTRAL\n7\tA man\tThe man\t4.9\tENTAILMENT\n")
  sick = sts.read_sick(str(tmp_path))
  assert sick.first == ['A boy "plays"', "A man"] and sick.scores.tolist() == [3.3, 4.9]


def _write_every_format(root):
  (root / "stsbenchmark").mkdir()
  (root / "stsbenchmark" / "sts-test.csv").write_text(
      "main-captions\tMSRvid\t2012test\t0024\t2.500\tA girl.\tA girl brushes her hair.\n"
      "main-news\theadlines\t2015\t0001\t0.0\tSaid.\tStocks.\n")
  (root / "sick2014").mkdir()
  (root / "sick2014" / "SICK_test_annotated.txt").write_text(
      "pair_ID\tsentence_A\tsentence_B\trelatedness_score\n6\tA boy\tKids\t3.3\n7\tA man\tThe man\t4.9\n")
  (root / "semeval-sts" / "2012").mkdir(parents=True)
  (root / "semeval-sts" / "2012" / "MSRpar.test.tsv").write_text("4.4\tA man.\tA man plays.\n0.5\tCats.\tDogs.\n")
  (root / "STS" / "STS13-en-test").mkdir(parents=True)
  (root / "STS" / "STS13-en-test" / "STS.input.FNWN.txt").write_text("a b\tc d\ne f\tg h\n")
  (root / "STS" / "STS13-en-test" / "STS.gs.FNWN.txt").write_text("3.2\n0.4\n")
  return {"stsb": root / "stsbenchmark" / "sts-test.csv",
          "sick": root / "sick2014" / "SICK_test_annotated.txt",
          "sts12": root / "semeval-sts" / "2012" / "MSRpar.test.tsv",
          "sts13": root / "STS" / "STS13-en-test" / "STS.gs.FNWN.txt"}


_READ = {"stsb": lambda root: sts.read_stsb(root, "test"), "sick": sts.read_sick,
         "sts12": lambda root: sts.read_semeval_year(root, 2012),
         "sts13": lambda root: sts.read_semeval_year(root, 2013)}


@pytest.mark.parametrize("fmt", sorted(_READ))
def test_a_non_numeric_score_or_non_utf8_file_names_the_file_and_line(tmp_path, fmt):
  """Every STS format: the reader names the file and the line, and says what it expected."""
  path = _write_every_format(tmp_path)[fmt]
  _READ[fmt](str(tmp_path))  # the written files are valid
  lines = path.read_text().splitlines(keepends=True)
  score_line = len(lines)  # the last line's score is replaced
  lines[-1] = {"stsb": lines[-1].replace("0.0", "n/a"), "sick": lines[-1].replace("4.9", "high"),
               "sts12": lines[-1].replace("0.5", "n/a"), "sts13": "n/a\n"}[fmt]
  path.write_text("".join(lines))
  with pytest.raises(ValueError, match=rf"{path.name}:{score_line}: the score '(n/a|high)' is not a number"):
    _READ[fmt](str(tmp_path))
  path.write_bytes(b"".join(line.encode() for line in lines[:-1]) + b"\xe9t\xe9\n")
  with pytest.raises(ValueError, match=rf"{path.name}:{score_line}: not UTF-8 text"):
    _READ[fmt](str(tmp_path))


def test_missing_files_say_where_to_get_them(tmp_path):
  with pytest.raises(sts.STSDataNotFoundError, match="semeval-sts/2013.*STS13-en-test.*dataset-sts"):
    sts.read_semeval_year(str(tmp_path), 2013)
  with pytest.raises(sts.STSDataNotFoundError, match="SICK_test_annotated.txt not found.*sick"):
    sts.read_sick(str(tmp_path))
  with pytest.raises(ValueError, match="STS task 'sts17'"):
    sts.load_tasks(str(tmp_path), ["sts17"])


def test_spearman_is_of_cosines_times_100():
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(50, 8)), rng.normal(size=(50, 8))
  scores = rng.normal(size=50)
  cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
  assert sts.spearman(a * 7.0, b, scores) == pytest.approx(stats.spearmanr(cosine, scores)[0] * 100)


@needs_shared
def test_real_files_parse_with_the_documented_counts():
  tasks = sts.load_tasks(SHARED)
  counts = {name: len(pairs.scores) for name, pairs in tasks.items()}
  assert counts["sickr"] == 4927 and counts["stsb"] == 1379
  assert counts["sts12"] == 2358  # without MSRvid (see ../shared/data/README.md)
  assert all(counts[f"sts{y}"] > 1000 for y in (13, 14, 15, 16)), counts
  assert all(np.isfinite(p.scores).all() and all(p.first) for p in tasks.values())


def test_minilm_scores_its_published_stsb_figure_before_any_training(minilm_dir):
  """The correctness anchor: all-MiniLM-L6-v2, mean pooling, normalised, STS-B test ≈ 82.03."""
  from prosampler_jax.models import bert, bert_tokenizer  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  directory = minilm_dir
  model = bert.load_pretrained(directory, pooling="avg")
  model.eval()
  graphdef, state = nnx.split(model)
  run = jax.jit(lambda state, tokens: nnx.merge(graphdef, state).encode(tokens))
  tokenizer = bert_tokenizer.SentenceTokenizer(directory, max_len=128)

  def embed(sentences):
    out = np.zeros((len(sentences), 384), np.float32)
    for rows, batch in bert_tokenizer.length_sorted_batches(tokenizer.tokenize(sentences), 256):
      out[rows] = np.asarray(run(state, batch))[:len(rows)]
    return out

  result = sts.evaluate(embed, sts.load_tasks(None, ["stsb"]))
  assert result["stsb"] == pytest.approx(82.03, abs=0.05), result
