"""GraphCL (unsupervised TU setting) on REDDIT-BINARY: 2,000 threads, 2 classes, no node labels
(a constant feature in the released recipe, one-hot degree in the paper recipe), up to 3,782
nodes per graph.

  python -m prosampler_jax.main --config=experiments/configs/graphcl_reddit_binary.py \
      --workdir=runs/graphcl_reddit_binary --config.sampler.name=proximity \
      --config.data_dir=/path/to/tu
  python -m experiments.compare_samplers --config=experiments/configs/graphcl_reddit_binary.py \
      --workdir=runs/graphcl_reddit_binary --seeds=0,1,2 --samplers=uniform,proximity \
      --config.data_dir=/path/to/tu

Data: download https://www.chrsmrrs.com/graphkerneldatasets/REDDIT-BINARY.zip and unzip it into
data_dir, so that data_dir/REDDIT-BINARY/REDDIT-BINARY_A.txt exists.
"""

from experiments.configs import graphcl_base


def get_config(recipe: str = "released_code"):
  config = graphcl_base.get_config(recipe)
  config.dataset = "REDDIT-BINARY"
  return config
