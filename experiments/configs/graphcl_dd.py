"""GraphCL (unsupervised TU setting) on DD: 1,178 proteins, 2 classes, 89 node labels, up to
5,748 nodes per graph.

  python -m prosampler_jax.main --config=experiments/configs/graphcl_dd.py \
      --workdir=runs/graphcl_dd --config.sampler.name=proximity \
      --config.data_dir=/path/to/tu
  python -m experiments.compare_samplers --config=experiments/configs/graphcl_dd.py \
      --workdir=runs/graphcl_dd --seeds=0,1,2 --samplers=uniform,proximity \
      --config.data_dir=/path/to/tu

Data: download https://www.chrsmrrs.com/graphkerneldatasets/DD.zip and unzip it into
data_dir, so that data_dir/DD/DD_A.txt exists.
"""

from experiments.configs import graphcl_base


def get_config(recipe: str = "released_code"):
  config = graphcl_base.get_config(recipe)
  config.dataset = "DD"
  # About 1,000 graphs: BatchSampler's M = 1000 would be (nearly) every graph, the kNN graph the
  # paper warns against; half its M and K keep a random candidate pool.
  config.sampler.num_neighbors = 50
  config.sampler.num_candidates = 500
  return config
