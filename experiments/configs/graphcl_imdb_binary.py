"""GraphCL (unsupervised TU setting) on IMDB-BINARY: 1,000 ego-networks, 2 classes, no node labels
(a constant feature in the released recipe, one-hot degree in the paper recipe).

  python -m prosampler_jax.main --config=experiments/configs/graphcl_imdb_binary.py \
      --workdir=runs/graphcl_imdb_binary --config.sampler.name=proximity \
      --config.data_dir=/path/to/tu
  python -m experiments.compare_samplers --config=experiments/configs/graphcl_imdb_binary.py \
      --workdir=runs/graphcl_imdb_binary --seeds=0,1,2 --samplers=uniform,proximity \
      --config.data_dir=/path/to/tu

Data: download https://www.chrsmrrs.com/graphkerneldatasets/IMDB-BINARY.zip and unzip it into
data_dir, so that data_dir/IMDB-BINARY/IMDB-BINARY_A.txt exists.
"""

from experiments.configs import graphcl_base


def get_config(recipe: str = "released_code"):
  config = graphcl_base.get_config(recipe)
  config.dataset = "IMDB-BINARY"
  # About 1,000 graphs: BatchSampler's M = 1000 would be (nearly) every graph, the kNN graph the
  # paper warns against; half its M and K keep a random candidate pool.
  config.sampler.num_neighbors = 50
  config.sampler.num_candidates = 500
  return config
