"""GraphCL (unsupervised TU setting) on MUTAG: 188 nitro compounds, 2 classes, 7 node labels; offline
(grakel's copy).

  python -m prosampler_jax.main --config=experiments/configs/graphcl_mutag.py \
      --workdir=runs/graphcl_mutag --config.sampler.name=proximity
  python -m experiments.compare_samplers --config=experiments/configs/graphcl_mutag.py \
      --workdir=runs/graphcl_mutag --seeds=0,1,2 --samplers=uniform,proximity

With 188 graphs GraphCL's batch of 128 leaves one batch per epoch and nothing for a sampler to
choose, so this config uses 32 (5 steps per epoch); everything else is GraphCL's.
"""

from experiments.configs import graphcl_base


def get_config():
  config = graphcl_base.get_config()
  config.dataset = "MUTAG"
  config.batch_size = 32
  config.sampler.num_neighbors = 16
  config.sampler.num_candidates = 64
  return config
