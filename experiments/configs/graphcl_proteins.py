"""GraphCL (unsupervised TU setting) on PROTEINS: 1,113 proteins, 2 classes, 3 node labels.

  python -m prosampler_jax.main --config=experiments/configs/graphcl_proteins.py \
      --workdir=runs/graphcl_proteins --config.sampler.name=proximity \
      --config.data_dir=/path/to/tu
  python -m experiments.compare_samplers --config=experiments/configs/graphcl_proteins.py \
      --workdir=runs/graphcl_proteins --seeds=0,1,2 --samplers=uniform,proximity \
      --config.data_dir=/path/to/tu

Data: download https://www.chrsmrrs.com/graphkerneldatasets/PROTEINS.zip and unzip it into
data_dir, so that data_dir/PROTEINS/PROTEINS_A.txt exists.
"""

from experiments.configs import graphcl_base


def get_config(recipe: str = "released_code"):
  config = graphcl_base.get_config(recipe)
  config.dataset = "PROTEINS"
  return config
