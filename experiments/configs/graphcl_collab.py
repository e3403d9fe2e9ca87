"""GraphCL (unsupervised TU setting) on COLLAB: 5,000 ego-networks, 3 classes, no node labels
(a constant feature in the released recipe, one-hot degree in the paper recipe).

  python -m prosampler_jax.main --config=experiments/configs/graphcl_collab.py \
      --workdir=runs/graphcl_collab --config.sampler.name=proximity \
      --config.data_dir=/path/to/tu
  python -m experiments.compare_samplers --config=experiments/configs/graphcl_collab.py \
      --workdir=runs/graphcl_collab --seeds=0,1,2 --samplers=uniform,proximity \
      --config.data_dir=/path/to/tu

Data: download https://www.chrsmrrs.com/graphkerneldatasets/COLLAB.zip and unzip it into
data_dir, so that data_dir/COLLAB/COLLAB_A.txt exists.
The ProSampler paper reports 70.62 (GraphCL) -> 71.48 (GraphCL + BatchSampler) here.
"""

from experiments.configs import graphcl_base


def get_config(recipe: str = "released_code"):
  config = graphcl_base.get_config(recipe)
  config.dataset = "COLLAB"
  return config
