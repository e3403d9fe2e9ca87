"""SimCLR on ImageNet-1k, read by index from ArrayRecord files (1.28M JPEGs never held in host memory).

tfds `imagenet2012` must be prepared under data_dir in ArrayRecord format (manual download; then
`download_and_prepare(file_format="array_record")`, or `tfds convert_format --dataset_version_dir=…
--out_file_format=array_record` for a TFRecord copy). Each host reads only its own columns of each
batch. The bank (1.28M × 256) is stored in bfloat16 and split over the devices' columns: 78 MiB per
device on 8 devices instead of 1.25 GiB (experiments/bench/bank_memory.py); while a window is sampled,
the first device also holds the sampler's float32 copy (1.25 GiB). Otherwise the ImageNet-100
setup (ResNet-50, standard stem, 224×224, B = 256, ProSampler M = 1000, K = 100, α = 0.2, t = 100).

  python -m prosampler_jax.main --config=experiments/configs/simclr_imagenet1k.py \
      --workdir=runs/imagenet1k --config.data_dir=/path/to/tensorflow_datasets
"""

from experiments.configs import simclr_imagenet100


def get_config():
  config = simclr_imagenet100.get_config()
  config.dataset = "imagenet1k"
  config.data_reader = "random_access"
  config.bank_dtype = "bfloat16"
  config.bank_sharding = "data"
  config.num_epochs = 100
  config.eval_every_epochs = 10
  return config
