"""Export a batch plan: which items share each mini-batch, for any framework, from saved embeddings.

  python -m prosampler_jax.plan --embeddings=emb.npy [--pairs=y.npy] [--labels=labels.npy] \
      --sampler=proximity --batch-size=256 --epochs=10 --out=plan.npy \
      [--seed=0] [--num-neighbors=100] [--num-candidates=1000] [--restart-prob=0.2] [--quantile=…]

Writes int32 ``[epochs, N // B, B]`` (row e, b: the items of batch b of epoch e) and prints one JSON line
of ``diagnostics.batch_stats`` per epoch (how hard the batches are; with labels, how many in-batch pairs
share a label). ``--pairs``: a second view per item (``[N, D]``, e.g. the positives' embeddings); "tail"
orders the pair, the other samplers use both views side by side. Bad input exits with status 2 and one
message naming the option and what it allows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import typing

import numpy as np

from prosampler_jax import samplers
from prosampler_jax.batch_plan import batch_plan

def sampler_options() -> dict[str, type]:
  """Every sampler's keyword options but the seed, with their types, read from the constructors'
  signatures (so a new option is a new flag); each is passed only to the samplers that take it."""
  options = {}
  for name, cls in samplers.SAMPLERS.items():
    hints = typing.get_type_hints(cls.__init__)
    for option in samplers.keyword_arguments(name):
      kinds = [k for k in typing.get_args(hints[option]) or (hints[option],) if k is not type(None)]
      options.setdefault(option, kinds[0])
  del options["seed"]  # the plan's own --seed
  return options


def parse_args(argv: list[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(prog="python -m prosampler_jax.plan", description=__doc__.split("\n")[0])
  add = lambda name, **kw: parser.add_argument(f"--{name.replace('_', '-')}", f"--{name}", dest=name, **kw)
  add("embeddings", required=True, help=".npy float [N, D]: one embedding per item.")
  add("pairs", help=".npy float [N, D]: a second view per item (optional).")
  add("labels", help=".npy [N] class labels: adds false_negative_rate to the statistics (optional).")
  add("sampler", required=True, choices=tuple(samplers.SAMPLERS), help="Which sampler.")
  add("batch_size", required=True, type=int, help="Items per batch B.")
  add("epochs", type=int, default=1, help="Epochs to plan (default 1).")
  add("out", required=True, help="Output .npy path for int32 [epochs, N // B, B].")
  add("seed", type=int, default=0, help="Seed of every random choice (default 0).")
  for name, kind in sampler_options().items():
    add(name, type=kind, help=f"The sampler's {name} (samplers that take it; their default if unset).")
  return parser.parse_args(argv)


def _load(option: str, path: str | None, *, rank: int | None = None) -> np.ndarray | None:
  """A .npy file given by ``--option``, or one clear error."""
  if path is None:
    return None
  if not os.path.isfile(path):
    raise ValueError(f"--{option}={path!r}: no such file; allowed: a .npy file written by np.save.")
  try:
    array = np.load(path, allow_pickle=False)
  except ValueError as e:
    raise ValueError(f"--{option}={path!r} is not a readable .npy array ({e}).") from e
  if rank is not None and array.ndim != rank:
    raise ValueError(f"--{option}={path!r} has shape {array.shape}; allowed: rank {rank}.")
  return array


def run(args: argparse.Namespace) -> list[dict]:
  """Builds the plan, writes it, and returns the per-epoch statistics."""
  out_dir = os.path.dirname(os.path.abspath(args.out))
  if not os.path.isdir(out_dir):  # checked before any work
    raise ValueError(f"--out={args.out!r}: directory {out_dir} does not exist.")
  if not args.out.endswith(".npy"):
    raise ValueError(f"--out={args.out!r}; allowed: a path ending in .npy (np.save would append it).")
  embeddings = _load("embeddings", args.embeddings, rank=2)
  pairs = _load("pairs", args.pairs, rank=2)
  labels = _load("labels", args.labels, rank=1)
  n = len(embeddings)
  if pairs is not None and pairs.shape != embeddings.shape:
    raise ValueError(f"--pairs has shape {pairs.shape}; allowed: the shape of --embeddings "
                     f"{embeddings.shape}.")
  if labels is not None and labels.shape != (n,):
    raise ValueError(f"--labels has shape {labels.shape}; allowed: ({n},), one per embedding.")
  accepted = samplers.keyword_arguments(args.sampler)
  kwargs = {name: getattr(args, name) for name in sampler_options()
            if getattr(args, name) is not None}
  ignored = sorted(set(kwargs) - set(accepted))
  if ignored:
    option = lambda name: "--" + name.replace("_", "-")
    raise ValueError(f"--sampler={args.sampler} does not take {', '.join(map(option, ignored))}; "
                     f"allowed: {', '.join(option(a) for a in accepted if a != 'seed') or 'none'}.")
  try:
    sampler = samplers.make_sampler(args.sampler, n, args.batch_size, seed=args.seed, **kwargs)
  except ValueError as e:
    raise ValueError(f"--{e}") from None  # the sampler's messages start with the argument's name
  plan, stats = batch_plan(sampler, embeddings if pairs is None else (embeddings, pairs),
                           epochs=args.epochs, labels=labels)
  np.save(args.out, plan)
  return stats


def main(argv: list[str] | None = None) -> int:
  args = parse_args(sys.argv[1:] if argv is None else argv)
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
