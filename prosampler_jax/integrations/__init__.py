"""The samplers inside other frameworks' trainers. Each module imports its framework (an optional extra:
``pip install prosampler_jax[sentence-transformers]``); importing this package imports none of them."""
