"""Training: the shared trainer, its config, optimiser groups and schedule,
data-parallel training under ``torchrun``, and the experiment API
(:mod:`graphmner.train.experiment`: a typed run spec, validated, then run)."""
from .distributed import Distributed, GlobalBatchSampler
from .trainer import (
                      CheckpointError,
                      TrainConfig,
                      Trainer,
                      TrainingInterrupted,
                      linear_schedule,
                      optimizer_groups,
                      plot_history,
                      seed_everything,
                      shuffled_loader,
)

__all__ = ['CheckpointError', 'Distributed', 'GlobalBatchSampler', 'TrainConfig', 'Trainer',
           'TrainingInterrupted', 'linear_schedule', 'optimizer_groups', 'plot_history', 'seed_everything',
           'shuffled_loader']
