"""prosampler_jax: choose which items share a contrastive mini-batch (ProSampler, Tail Batch Sampling).

``import prosampler_jax as ps`` gives the samplers and their building blocks; it never imports
TensorFlow (that lives in ``prosampler_jax.data``).
"""

from prosampler_jax import diagnostics
from prosampler_jax import graph
from prosampler_jax import losses
from prosampler_jax import samplers
from prosampler_jax import walk

__all__ = ["diagnostics", "graph", "losses", "samplers", "walk"]
