"""aelab: a reproducible lab for autoencoders on MNIST. The layers, from the bottom: core,
data, models, training, analysis, reports and serving, tracking, cli (pyproject.toml's
import contracts)."""
