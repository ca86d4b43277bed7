"""Training: the shared trainer, its config, optimiser groups and schedule, and
data-parallel training under ``torchrun``."""
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
