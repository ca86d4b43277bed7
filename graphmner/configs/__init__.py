"""Package data: the papers' hyper-parameters per model x dataset (``<model>_<dataset>.yaml``),
read by :func:`graphmner.train.experiment.config_file` through :mod:`importlib.resources`."""
