"""The sweep runner as a library: grid points, their configs and run directories, and running them.

Used by ``sweep.py`` (the command line) and ``experiments/compare_samplers.py``; it defines no flags.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import shlex
import sys

import ml_collections
import tqdm
from absl import logging

from experiments.ablations import sweeps
from prosampler_jax import run_config
from prosampler_jax import run_log


def config_key(axis: str) -> str:
  """The config key of an axis (a short name of ``sweeps.AXES`` or a dotted key)."""
  return sweeps.AXES.get(axis, axis)


def expand(grid: list[dict], seeds: list[int]) -> list[dict]:
  """Every point of the grid (a list of sub-grids, each a Cartesian product) for every seed."""
  points = []
  for sub_grid in grid:
    names = list(sub_grid)
    for values in itertools.product(*(sub_grid[n] for n in names)):
      for seed in seeds:
        point = {**dict(zip(names, values)), "seed": seed}
        if point not in points:
          points.append(point)
  return points


def run_name(point: dict) -> str:
  """The run's directory name: ``axis=value`` pairs in grid order, the seed last."""
  return ",".join(f"{k}={v}" for k, v in point.items())


def make_config(base: ml_collections.ConfigDict, overrides: dict, point: dict
                ) -> ml_collections.ConfigDict:
  """The base config with the sweep's overrides and the point's values (each key must exist)."""
  config = base.copy_and_resolve_references()
  config.lock()  # as on the command line: a misspelt key fails instead of adding one
  for key, value in {**overrides, **{config_key(k): v for k, v in point.items()}}.items():
    try:
      config.update_from_flattened_dict({key: value})
    except KeyError as e:
      raise ValueError(f"axis or override {key!r} is not a config key; allowed: the short names "
                       f"{', '.join(sweeps.AXES)} or an existing dotted key.") from e
  return config


def load_config(path: str) -> ml_collections.ConfigDict:
  """``get_config()`` of a config file, as ``--config`` of the training entry point reads it:
  ``file.py:text`` passes ``text`` to ``get_config`` (a config's variant, e.g. a GraphCL recipe)."""
  file, *argument = path.split(":", 1)
  if not os.path.isfile(file):
    raise ValueError(f"config file {file!r} not found; allowed: a path like "
                     "experiments/configs/simclr_digits.py (optionally :<variant>).")
  module_spec = importlib.util.spec_from_file_location("sweep_base_config", file)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(*argument)


def parse_value(text: str):
  """A command-line value as the config wants it: int, float, bool, None, or the string."""
  for kind in (int, float):
    try:
      return kind(text)
    except ValueError:
      pass
  return {"true": True, "false": False, "none": None}.get(text.lower(), text)


class Preempted(Exception):
  """A run of the sweep stopped on SIGTERM (its checkpoint is saved); the sweep stopped with it."""


def _config_key(config: dict) -> str:
  """A canonical text of a config (as ``to_dict()`` or as read back from results.json)."""
  return json.dumps(config, sort_keys=True, default=str)


def read_results(run_dir: str) -> dict | None:
  """``run_dir/results.json``, or None when there is none. A damaged one (not JSON, not UTF-8) is
  reported by path and treated as absent: the run is not finished, and nothing else stops."""
  path = os.path.join(run_dir, "results.json")
  if not os.path.exists(path):
    return None
  try:
    with open(path, encoding="utf-8") as f:
      results = json.load(f)
  except (ValueError, UnicodeDecodeError) as error:
    logging.warning("%s is damaged (%s: %s); the run counts as unfinished.", path,
                    type(error).__name__, error)
    return None
  return results if isinstance(results, dict) else None


def same_config(results: dict | None, config: dict) -> bool:
  """The one rule for "these results are this run's": they hold exactly ``config`` (``to_dict()``), a key
  they predate counting as its neutral value. The runner skips such a run; ``summarize`` counts only such
  results."""
  saved = None if results is None else results.get("config")
  if saved is None:
    return False
  # A key added after the results were written counts as its neutral value (run_config.ADDED_KEYS), as
  # on resume: adding a config key must not turn every finished run into an unfinished one.
  saved, config = run_config.flatten(saved), run_config.flatten(config)
  saved = {**{k: v for k, v in run_config.ADDED_KEYS.items() if k in config}, **saved}
  return _config_key(saved) == _config_key(config)


def refused_changes(results: dict | None, config: ml_collections.ConfigDict
                    ) -> list[tuple[str, object, object]]:
  """The keys (saved, now) for which the loop would refuse to continue a run's ``results`` with
  ``config`` (``run_config.differences``: keys outside ``RESUMABLE_KEYS``); empty when it can go on."""
  if results is None or results.get("config") is None:
    return []
  return run_config.differences(run_config.flatten(results["config"]), run_config.flatten(config))


def check_distinct(points: list[dict], configs: list[ml_collections.ConfigDict]) -> None:
  """Two grid points that train the same run would run it twice under two names: refuse them. Points
  are compared on what the run reads: keys the point's sampler, loss or task ignores
  (``run_config.unread_keys``) are left out, so an axis M over Tail Batch Sampling is refused, not run as
  several "distinct" runs."""
  seen: dict[str, tuple[str, dict]] = {}
  for point, config in zip(points, configs):
    flat = run_config.flatten(config)
    unread = set(run_config.unread_keys(config))
    key = _config_key({k: v for k, v in flat.items() if k not in unread})
    if key in seen:
      first, first_flat = seen[key]
      ignored = sorted(k for k in flat if flat[k] != first_flat.get(k))
      if ignored:
        owners = [reader for reader, keys, _ in run_config.readers(config) if set(keys) & set(ignored)]
        raise ValueError(f"grid points {first!r} and {run_name(point)!r} train the same model: they differ "
                         f"only in {', '.join(ignored)}, which {' and '.join(owners)} does not read; "
                         "allowed: grids that vary only what the point's sampler, loss and task read (move "
                         "that axis to a sub-grid of the samplers or losses that read it).")
      raise ValueError(f"grid points {first!r} and {run_name(point)!r} give the same config (an axis "
                       "set to its default); allowed: grids whose points differ, e.g. name the default "
                       "value in every sub-grid that varies its neighbours.")
    seen[key] = (run_name(point), flat)


def launch_command(spec: dict, point: dict, workdir: str) -> str:
  """One ``prosampler_jax.main`` command line for a run (what a cluster job executes)."""
  values = {**spec.get("overrides", {}), **{config_key(k): v for k, v in point.items()}}
  args = [sys.executable, "-m", "prosampler_jax.main", f"--config={spec['config']}",
          f"--workdir={workdir}"] + [f"--config.{k}={v}" for k, v in values.items()]
  return " ".join(shlex.quote(a) for a in args)


def run_sweep(name: str, spec: dict, parent: str, *, print_commands: bool = False,
              base: ml_collections.ConfigDict | None = None) -> list[str]:
  """Runs (or prints) every unfinished run of the sweep; returns the run directories.

  A run is finished when its results.json holds exactly its config. ``base``: the base config itself
  (e.g. with command-line overrides); None loads ``spec["config"]``. Raises ``Preempted`` when a run
  stops on SIGTERM, so no further run starts in the grace period.
  """
  points = expand(spec["grid"], spec["seeds"])
  base = load_config(spec["config"]) if base is None else base
  # Every point is checked before anything is written or run.
  configs = [make_config(base, spec.get("overrides", {}), p) for p in points]
  check_distinct(points, configs)
  root = os.path.join(parent, name)
  dirs = [os.path.join(root, run_name(p)) for p in points]
  saved = [read_results(d) for d in dirs]
  # ... and against what is on disk, before sweep.json changes: results of a config the loop would refuse
  # to continue stop the sweep here, so summarize never reads them under the new definition.
  refused = [(run_name(p), changes) for p, results, c in zip(points, saved, configs)
             if (changes := refused_changes(results, c))]
  if refused:
    lines = "\n".join(f"  {run}: " + ", ".join(f"{k} {old!r} -> {new!r}" for k, old, new in changes)
                      for run, changes in refused)
    raise ValueError(f"sweep {name!r}: {len(refused)} run(s) under {root} hold results of another config "
                     f"that the loop cannot continue (results -> now):\n{lines}\nsweep.json was left as "
                     "it was. Restore those values, move the runs away, or use another parent directory.")
  os.makedirs(root, exist_ok=True)
  with open(os.path.join(root, "sweep.json"), "w") as f:
    json.dump({"name": name, **spec, "runs": [run_name(p) for p in points], "points": points,
               "configs": {run_name(p): c.to_dict() for p, c in zip(points, configs)}}, f, indent=2,
              default=str)
  # Finished: results of exactly this config. Others go to the loop, which extends them (more epochs).
  todo = [i for i, results in enumerate(saved) if not same_config(results, configs[i].to_dict())]
  if print_commands:
    for i in todo:
      print(launch_command(spec, points[i], dirs[i]))
    return dirs
  from prosampler_jax import train  # pylint: disable=g-import-not-at-top  (only runs need the loop)
  bar = tqdm.tqdm(todo, desc=f"sweep {name}", unit="run", initial=len(dirs) - len(todo),
                  total=len(dirs), position=0)
  for i in bar:
    bar.set_postfix_str(run_name(points[i]))
    with run_log.to_file(dirs[i]):  # what C/C++ libraries print inside a run goes to its train.log
      results = train.train_and_evaluate(configs[i], dirs[i])
    if results.get("stop_reason") == "preempted":
      raise Preempted(f"{dirs[i]} stopped on SIGTERM with its checkpoint saved; rerun the sweep to "
                      "resume it and the runs after it.")
  return dirs
