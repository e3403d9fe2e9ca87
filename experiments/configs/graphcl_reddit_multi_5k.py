"""GraphCL (unsupervised TU setting) on REDDIT-MULTI-5K: 4,999 threads, 5 classes, no node labels
(a constant feature in the released recipe, one-hot degree in the paper recipe).

  python -m prosampler_jax.main --config=experiments/configs/graphcl_reddit_multi_5k.py \
      --workdir=runs/graphcl_reddit_multi_5k --config.sampler.name=proximity \
      --config.data_dir=/path/to/tu
  python -m experiments.compare_samplers --config=experiments/configs/graphcl_reddit_multi_5k.py \
      --workdir=runs/graphcl_reddit_multi_5k --seeds=0,1,2 --samplers=uniform,proximity \
      --config.data_dir=/path/to/tu

Data: download https://www.chrsmrrs.com/graphkerneldatasets/REDDIT-MULTI-5K.zip and unzip it into
data_dir, so that data_dir/REDDIT-MULTI-5K/REDDIT-MULTI-5K_A.txt exists.
"""

from experiments.configs import graphcl_base


def get_config(recipe: str = "released_code"):
  config = graphcl_base.get_config(recipe)
  config.dataset = "REDDIT-MULTI-5K"
  return config
