"""SimCLR projection head ``g(·)``: the MLP between the representation ``h`` and the loss space ``z``."""

from __future__ import annotations

from flax import nnx
import jax

from prosampler_jax import _checks


class _HiddenLayer(nnx.Module):
  """Linear (no bias: BN's shift replaces it) → BatchNorm → ReLU."""

  def __init__(self, in_features: int, out_features: int, *, rngs: nnx.Rngs):
    self.linear = nnx.Linear(in_features, out_features, use_bias=False, rngs=rngs)
    self.norm = nnx.BatchNorm(out_features, momentum=0.9, epsilon=1e-5, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return nnx.relu(self.norm(self.linear(x)))


class ProjectionHead(nnx.Module):
  """MLP ``g(h) = z``: (Linear-BN-ReLU) x (num_layers - 1), then Linear to ``out_features``.

  Hidden BN (as in SimCLR v2 and the official TF code) rather than v1's Linear-ReLU-Linear: it keeps
  training stable at the large batches and learning rates contrastive methods use. Runs in float32.
  """

  def __init__(self, in_features: int, *, hidden_features: int | None = None, out_features: int = 128,
               num_layers: int = 2, rngs: nnx.Rngs):
    in_features = _checks.check_int("in_features", in_features, low=1)
    hidden = in_features if hidden_features is None else _checks.check_int(
        "hidden_features", hidden_features, low=1)
    self.out_features = _checks.check_int("out_features", out_features, low=1)
    num_layers = _checks.check_int("num_layers", num_layers, low=1)
    layers = []
    features = in_features
    for _ in range(num_layers - 1):
      layers.append(_HiddenLayer(features, hidden, rngs=rngs))
      features = hidden
    self.hidden = nnx.List(layers)
    self.output = nnx.Linear(features, self.out_features, rngs=rngs)

  def __call__(self, h: jax.Array) -> jax.Array:
    x = h
    for layer in self.hidden:
      x = layer(x)
    return self.output(x)
