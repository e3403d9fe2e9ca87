"""GraphCL (unsupervised TU setting) on NCI1: 4,110 molecules, 2 classes, 37 node labels.

  python -m prosampler_jax.main --config=experiments/configs/graphcl_nci1.py \
      --workdir=runs/graphcl_nci1 --config.sampler.name=proximity \
      --config.data_dir=/path/to/tu
  python -m experiments.compare_samplers --config=experiments/configs/graphcl_nci1.py \
      --workdir=runs/graphcl_nci1 --seeds=0,1,2 --samplers=uniform,proximity \
      --config.data_dir=/path/to/tu

Data: download https://www.chrsmrrs.com/graphkerneldatasets/NCI1.zip and unzip it into
data_dir, so that data_dir/NCI1/NCI1_A.txt exists.
The ProSampler paper reports GraphCL + BatchSampler at +1.06 over GraphCL here.
"""

from experiments.configs import graphcl_base


def get_config(recipe: str = "released_code"):
  config = graphcl_base.get_config(recipe)
  config.dataset = "NCI1"
  return config
