"""GraphCL (unsupervised TU setting) on MUTAG: 188 nitro compounds, 2 classes, 7 node labels; offline
(grakel's copy).

  python -m prosampler_jax.main --config=experiments/configs/graphcl_mutag.py \
      --workdir=runs/graphcl_mutag --config.sampler.name=proximity
  python -m experiments.compare_samplers --config=experiments/configs/graphcl_mutag.py \
      --workdir=runs/graphcl_mutag --seeds=0,1,2 --samplers=uniform,proximity

With 188 graphs GraphCL's batch of 128 leaves one batch per epoch and nothing for a sampler to
choose, so this config uses 32 (5 steps per epoch), and ProSampler's M and K and refresh interval
shrink to fit 188 graphs and 100 steps (BatchSampler's M = 1000 and t = 100 steps do not); everything
else is GraphCL's.
"""

from experiments.configs import graphcl_base


def get_config(recipe: str = "released_code"):
  config = graphcl_base.get_config(recipe)
  config.dataset = "MUTAG"
  config.batch_size = 32
  config.sampler.num_neighbors = 16
  config.sampler.num_candidates = 64
  config.sampler.refresh_steps = 0  # once per epoch
  return config
