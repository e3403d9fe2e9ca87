"""Batch samplers: which items share a contrastive mini-batch (DESIGN §3.4).

Every sampler has ``sample(epoch, embeddings=None, *, num_batches=None, window=0)`` returning int32
``[num_batches, B]`` indices, and ``state_dict()`` / ``load_state_dict(d)`` for exact resume.
"""

from __future__ import annotations

import inspect

from prosampler_jax.samplers.base import BatchSampler, sampler_input
from prosampler_jax.samplers.cluster import ClusterSampler
from prosampler_jax.samplers.knn import KnnSampler
from prosampler_jax.samplers.partition import PartitionSampler
from prosampler_jax.samplers.proximity import ProximitySampler
from prosampler_jax.samplers.tail import TailSampler
from prosampler_jax.samplers.uniform import FixedSampler, UniformSampler

SAMPLERS = {
    "uniform": UniformSampler,
    "proximity": ProximitySampler,
    "knn": KnnSampler,
    "tail": TailSampler,
    "partition": PartitionSampler,
    "cluster": ClusterSampler,
    "fixed": FixedSampler,
}


def keyword_arguments(name: str) -> list[str]:
  """The keyword-only arguments of sampler ``name``'s constructor (read from its signature)."""
  if name not in SAMPLERS:
    raise ValueError(f"name={name!r} is not a sampler; allowed: {', '.join(map(repr, SAMPLERS))}.")
  return [p.name for p in inspect.signature(SAMPLERS[name].__init__).parameters.values()
          if p.kind is inspect.Parameter.KEYWORD_ONLY]


def make_sampler(name: str, num_examples: int, batch_size: int, **kwargs) -> BatchSampler:
  """Builds the sampler called ``name`` (a config string) with the sampler's keyword arguments."""
  allowed = keyword_arguments(name)
  cls = SAMPLERS[name]
  unknown = sorted(set(kwargs) - set(allowed))
  if unknown:
    raise ValueError(f"unknown argument(s) {unknown} for sampler {name!r}; allowed: {allowed}.")
  return cls(num_examples, batch_size, **kwargs)


__all__ = ["BatchSampler", "ClusterSampler", "FixedSampler", "KnnSampler", "PartitionSampler",
           "ProximitySampler", "SAMPLERS", "TailSampler", "UniformSampler", "keyword_arguments",
           "make_sampler", "sampler_input"]
