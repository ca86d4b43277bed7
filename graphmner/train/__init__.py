"""Training: the shared trainer, its config, optimiser groups and schedule,
data-parallel training under ``torchrun``, and the experiment API
(:mod:`graphmner.train.experiment`: a typed run spec, validated, then run), and the
per-stage wall-clock profile of a training step (:mod:`graphmner.train.profile`)."""
from .distributed import Distributed, GlobalBatchSampler
from .profile import StageClock
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

__all__ = ['CheckpointError', 'Distributed', 'GlobalBatchSampler', 'StageClock', 'TrainConfig', 'Trainer',
           'TrainingInterrupted', 'linear_schedule', 'optimizer_groups', 'plot_history', 'seed_everything',
           'shuffled_loader']
