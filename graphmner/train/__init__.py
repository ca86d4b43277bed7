"""Training: the shared trainer, its config, optimiser groups and schedule."""
from .trainer import (
                      CheckpointError,
                      TrainConfig,
                      Trainer,
                      linear_schedule,
                      optimizer_groups,
                      plot_history,
                      seed_everything,
                      shuffled_loader,
)

__all__ = ['CheckpointError', 'TrainConfig', 'Trainer', 'linear_schedule', 'optimizer_groups', 'plot_history',
           'seed_everything', 'shuffled_loader']
