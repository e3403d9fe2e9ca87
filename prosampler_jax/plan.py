"""Export a batch plan, or compare every sampler, from saved embeddings.

One sampler's plan (which items share each mini-batch, for any framework):

  python -m prosampler_jax.plan --embeddings=emb.npy [--pairs=y.npy] [--labels=labels.npy] \
      --sampler=proximity --batch-size=256 --epochs=10 --out=plan.npy \
      [--seed=0] [--num-neighbors=100] [--num-candidates=1000] [--restart-prob=0.2] [--quantile=…]

Writes int32 ``[epochs, N // B, B]`` (row e, b: the items of batch b of epoch e), a ``.json`` sidecar
beside it saying what made it (``batch_plan.save_plan``: sampler, arguments, seed, N, B, the embeddings'
fingerprint; ``batch_plan.load_plan`` refuses a plan made for other data), and prints one JSON line
of ``diagnostics.batch_stats`` per epoch (how hard the batches are; with labels, how many in-batch pairs
share a label).

Every sampler side by side on the same embeddings (``plan_compare.py``):

  python -m prosampler_jax.plan compare --embeddings=emb.npy [--pairs=y.npy] [--labels=labels.npy] \
      --batch-size=256 [--samplers=uniform,proximity,…] [--out=plan_compare] […]

``--pairs``: a second view per item (``[N, D]``, e.g. the positives' embeddings); "tail" orders the pair,
the other samplers and the hardness figures use both views side by side (``batch_plan``'s convention).
Bad input exits with status 2 and one line naming the option and what it allows, before any sampling.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import typing

import numpy as np

from prosampler_jax import _checks
from prosampler_jax import samplers
from prosampler_jax.batch_plan import batch_plan
from prosampler_jax.batch_plan import save_plan

# ------------------------------------------------------------------ shared by both forms

def _sampler_parameters(name: str) -> dict[str, tuple[type, bool, typing.Any]]:
  """Sampler ``name``'s keyword options but the seed, as ``option: (type, None allowed, default)``, read
  from its constructor's signature (so a new option is a new flag)."""
  cls = samplers.SAMPLERS[name]
  hints = typing.get_type_hints(cls.__init__)
  parameters = inspect.signature(cls.__init__).parameters
  options = {}
  for option in samplers.keyword_arguments(name):
    if option == "seed":  # the plan's own --seed
      continue
    kinds = typing.get_args(hints[option]) or (hints[option],)
    kind = next(k for k in kinds if k is not type(None))
    options[option] = (kind, type(None) in kinds, parameters[option].default)
  return options


def sampler_options() -> dict[str, type]:
  """Every sampler's keyword options but the seed, with their types; each is passed only to the samplers
  that take it."""
  options = {}
  for name in samplers.SAMPLERS:
    for option, (kind, _, _) in _sampler_parameters(name).items():
      options.setdefault(option, kind)
  return options


def _load(option: str, path: str | None, *, rank: int | None = None) -> np.ndarray | None:
  """A .npy file given by ``--option``, or one clear error."""
  if path is None:
    return None
  if not os.path.isfile(path):
    raise ValueError(f"--{option}={path!r}: no such file; allowed: a .npy file written by np.save.")
  try:
    array = np.load(path, allow_pickle=False)
  except (ValueError, OSError, EOFError) as e:
    raise ValueError(f"--{option}={path!r} is not a readable .npy array ({e}).") from e
  if not isinstance(array, np.ndarray):  # np.load opens a .npz archive as a dict-like NpzFile
    names = ", ".join(array.files)
    array.close()
    raise ValueError(f"--{option}={path!r} is a .npz archive (arrays: {names}); allowed: one array in a "
                     ".npy file written by np.save.")
  if rank is not None and array.ndim != rank:
    raise ValueError(f"--{option}={path!r} has shape {array.shape}; allowed: rank {rank}.")
  return array


def load_inputs(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
  """``--embeddings`` (float32 ``[N, D]``), ``--pairs`` (the same shape, or None) and ``--labels``
  (``[N]`` or None), checked against each other."""
  embeddings = _load("embeddings", args.embeddings, rank=2)
  pairs = _load("pairs", args.pairs, rank=2)
  labels = _load("labels", args.labels, rank=1)
  n = len(embeddings)
  if pairs is not None and pairs.shape != embeddings.shape:
    raise ValueError(f"--pairs has shape {pairs.shape}; allowed: the shape of --embeddings "
                     f"{embeddings.shape}.")
  if labels is not None and labels.shape != (n,):
    raise ValueError(f"--labels has shape {labels.shape}; allowed: ({n},), one per embedding.")
  embeddings = _checks.check_embeddings("--embeddings", embeddings)  # float, N ≥ 2, finite
  if pairs is not None:
    pairs = _checks.check_embeddings("--pairs", pairs)
  return embeddings, pairs, labels


def _add(parser: argparse.ArgumentParser, name: str, **kwargs) -> None:
  """``--name`` with both spellings (``--batch-size`` and ``--batch_size``)."""
  parser.add_argument(*dict.fromkeys([f"--{name.replace('_', '-')}", f"--{name}"]), dest=name, **kwargs)


def _add_inputs(parser: argparse.ArgumentParser) -> None:
  _add(parser, "embeddings", required=True, help=".npy float [N, D]: one embedding per item.")
  _add(parser, "pairs", help=".npy float [N, D]: a second view per item (optional).")
  _add(parser, "labels", help=".npy [N] class labels: adds false_negative_rate to the statistics.")
  _add(parser, "batch_size", required=True, type=int, help="Items per batch B.")
  _add(parser, "seed", type=int, default=0, help="Seed of every random choice (default 0).")


# ------------------------------------------------------------------ one sampler's plan

def parse_args(argv: list[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog="python -m prosampler_jax.plan",
                                   description=__doc__.split("\n")[0],
                                   epilog="Every sampler side by side: python -m prosampler_jax.plan "
                                   "compare --help.")
  _add_inputs(parser)
  _add(parser, "sampler", required=True, choices=tuple(samplers.SAMPLERS), help="Which sampler.")
  _add(parser, "epochs", type=int, default=1, help="Epochs to plan (default 1).")
  _add(parser, "out", required=True, help="Output .npy path for int32 [epochs, N // B, B].")
  for name, kind in sampler_options().items():
    _add(parser, name, type=kind,
         help=f"The sampler's {name} (samplers that take it; their default if unset).")
  return parser.parse_args(argv)


def run(args: argparse.Namespace) -> list[dict]:
  """Builds the plan, writes it, and returns the per-epoch statistics."""
  out_dir = os.path.dirname(os.path.abspath(args.out))
  if not os.path.isdir(out_dir):  # checked before any work
    raise ValueError(f"--out={args.out!r}: directory {out_dir} does not exist.")
  if not args.out.endswith(".npy"):
    raise ValueError(f"--out={args.out!r}; allowed: a path ending in .npy (np.save would append it).")
  _checks.check_int("--epochs", args.epochs, low=1)
  embeddings, pairs, labels = load_inputs(args)
  accepted = samplers.keyword_arguments(args.sampler)
  kwargs = {name: getattr(args, name) for name in sampler_options()
            if getattr(args, name) is not None}
  ignored = sorted(set(kwargs) - set(accepted))
  if ignored:
    option = lambda name: "--" + name.replace("_", "-")
    raise ValueError(f"--sampler={args.sampler} does not take {', '.join(map(option, ignored))}; "
                     f"allowed: {', '.join(option(a) for a in accepted if a != 'seed') or 'none'}.")
  try:
    sampler = samplers.make_sampler(args.sampler, len(embeddings), args.batch_size, seed=args.seed,
                                    **kwargs)
  except ValueError as e:
    raise ValueError(f"--{e}") from None  # the sampler's messages start with the argument's name
  inputs = embeddings if pairs is None else (embeddings, pairs)
  plan, stats = batch_plan(sampler, inputs, epochs=args.epochs, labels=labels)
  save_plan(args.out, plan, sampler, inputs, sampler_name=args.sampler,
            inputs={"embeddings": args.embeddings, "pairs": args.pairs, "labels": args.labels})
  return stats


def main(argv: list[str] | None = None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  if argv[:1] == ["compare"]:
    from prosampler_jax import plan_compare  # pylint: disable=g-import-not-at-top
    return plan_compare.main(argv[1:])
  args = parse_args(argv)
  try:
    stats = run(args)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  for epoch_stats in stats:
    print(json.dumps(epoch_stats))
  return 0


if __name__ == "__main__":
  sys.exit(main())
