"""Training loop shared by every model: AdamW with separate encoder / head
learning rates, linear warm-up and decay, gradient clipping, dev-based model
selection, atomic checkpoints, ``--resume``, a log and a plot per run.

The run folder holds the weights once: ``best.pt`` (the best dev epoch) is the
only model file of a finished run. ``last.pt`` carries the full training state
(weights, optimizer moments, schedule, RNG) only while the run is unfinished;
after the last epoch it shrinks to a record of the finished run (history,
best score, timings), which is all ``--resume`` needs to report the run again.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim import AdamW
from torch.optim.lr_scheduler import LambdaLR
from torch_geometric.data import HeteroData
from torch_geometric.loader import DataLoader
from tqdm.auto import tqdm

from ..io import (
    CheckpointError,
    atomic_save,
    atomic_write,
    atomic_write_text,
    load_failure,
    remove_partial_writes,
)
from ..models.base import MNERModel
from .distributed import Distributed, GlobalBatchSampler, per_rank_batch
from .profile import (
    COLLATE,
    HEADS_BACKWARD,
    LOSS,
    OPTIMIZER,
    TO_DEVICE,
    NullClock,
    StageClock,
    profiling,
)

log = logging.getLogger('graphmner.train')

BEST = 'best.pt'    # model checkpoint of the best dev epoch
LAST = 'last.pt'    # training state after the last finished epoch (for --resume)

#: ``train.precision`` (``--precision``): the autocast dtype of each mode (fp32: no autocast).
PRECISIONS = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) during :meth:`Trainer.fit`; the message says which epoch
    ``last.pt`` keeps. A :class:`KeyboardInterrupt`, so that code catching
    :class:`Exception` lets it through; the command shows it as one line, exit
    status 130.

    Attributes:
        kept_epoch (int): the last epoch whose training state is in ``last.pt``
            (0: none, ``--resume`` starts from scratch).
    """

    def __init__(self, message: str, kept_epoch: int):
        super().__init__(message)
        self.kept_epoch = kept_epoch


@dataclass
class TrainConfig:
    epochs: int = 3
    batch_size: int = 16
    eval_batch_size: int = 64
    encoder_lr: float = 5e-5       # fine-tuned text encoder
    head_lr: float = 1e-3          # everything else (fusion layers, emissions, CRF)
    weight_decay: float = 0.01     # not applied to biases and LayerNorm weights
    warmup_ratio: float = 0.1      # fraction of all steps with a linear warm-up
    max_grad_norm: float = 1.0     # 0 disables clipping
    seed: int = 1
    scheme: str = 'conlleval'      # span chunking for dev / test scores
    precision: str = 'fp32'        # training forward in 'bf16' or 'fp16' autocast (the CRF stays float32)

    def __post_init__(self):
        for name in ('epochs', 'batch_size', 'eval_batch_size'):
            if getattr(self, name) < 1:
                raise ValueError(f"'train.{name}' must be at least 1, got {getattr(self, name)}")
        for name in ('encoder_lr', 'head_lr'):
            if not getattr(self, name) > 0:
                raise ValueError(f"'train.{name}' must be positive, got {getattr(self, name)}")
        if self.weight_decay < 0 or self.max_grad_norm < 0:
            raise ValueError(f"'train.weight_decay' and 'train.max_grad_norm' must not be negative, got "
                             f'{self.weight_decay} and {self.max_grad_norm}')
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"'train.warmup_ratio' must be in [0, 1), got {self.warmup_ratio}")
        if self.scheme not in ('conlleval', 'strict'):
            raise ValueError(f"'train.scheme' must be 'conlleval' or 'strict', got {self.scheme!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"'train.precision' must be one of {', '.join(PRECISIONS)}, got "
                             f'{self.precision!r}')


def check_precision(precision: str, device: torch.device) -> None:
    """``fp16`` needs CUDA (its gradient scaler and half kernels); ``bf16``
    autocast and ``fp32`` run on any device."""
    if precision == 'fp16' and torch.device(device).type != 'cuda':
        raise ValueError(f"--precision fp16 needs a CUDA device, got '{device}'; on a CPU use bf16 or fp32")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def optimizer_groups(model: MNERModel, config: TrainConfig) -> list[dict[str, Any]]:
    """Four AdamW groups: encoder / head x with / without weight decay (biases
    and normalisation weights, i.e. every parameter of fewer than 2 dims, are
    not decayed)."""
    encoder, head = model.parameter_groups()
    no_decay = {id(p) for p in model.parameters() if p.ndim < 2}
    groups = []
    for params, lr in ((encoder, config.encoder_lr), (head, config.head_lr)):
        params = [p for p in params if p.requires_grad]
        groups.append({'params': [p for p in params if id(p) not in no_decay], 'lr': lr,
                       'weight_decay': config.weight_decay})
        groups.append({'params': [p for p in params if id(p) in no_decay], 'lr': lr,
                       'weight_decay': 0.0})
    return [g for g in groups if g['params']]


def shuffled_loader(graphs: Sequence[HeteroData], batch_size: int, seed: int, epoch: int, rank: int = 0,
                    world_size: int = 1) -> DataLoader:
    """This rank's training batches, whose order depends on (seed, epoch) only,
    so a resumed run sees the same batches as an uninterrupted one; the global
    ``batch_size`` is shared out over ``world_size`` ranks
    (:class:`GlobalBatchSampler`)."""
    sampler = GlobalBatchSampler(len(graphs), batch_size, seed, epoch, rank, world_size)
    # A generator of its own: the loader draws a seed from it, not from the stream dropout reads.
    return DataLoader(graphs, batch_sampler=sampler, generator=torch.Generator())


class TrainingObjective(nn.Module):
    """A model's :meth:`~MNERModel.loss` as a module's ``forward``: DDP
    synchronises gradients only for what runs through the forward it wraps."""

    def __init__(self, model: MNERModel):
        super().__init__()
        self.model = model

    def forward(self, batch) -> tuple[torch.Tensor, dict[str, float]]:
        return self.model.loss(batch)


def linear_schedule(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> LambdaLR:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))
    return LambdaLR(optimizer, factor)


class Trainer:
    """Trains ``model`` on ``train`` graphs, selects on ``dev``, reports ``test``.

    Args:
        model (MNERModel): any registered model.
        train, dev (Sequence[HeteroData]): tweet graphs (already filtered to the
            model's relations).
        config (TrainConfig): optimisation settings.
        run_dir (Path): receives ``best.pt``, ``last.pt``, ``history.json`` and
            ``training.png``, each written atomically (a killed run leaves the
            previous version, never a cut-off file).
        device (str, optional): where batches go. (default: :obj:`'cpu'`)
        distributed (Distributed, optional): this process's place in a
            ``torchrun`` run (its device replaces ``device``): the model is
            wrapped in DDP, ``config.batch_size`` is the global batch, and rank
            0 alone evaluates and writes ``run_dir``. (default: one process)
        profile (StageClock, optional): charged with the wall-clock time of
            every training epoch, stage by stage (collation, tokenisation,
            encoder and fusion layers forward and backward, CRF, auxiliary
            losses, optimizer: :mod:`graphmner.train.profile`); its hooks are
            on the model during :meth:`train_epoch` only. (default: no profile,
            no hook)
    """

    def __init__(self, model: MNERModel, train: Sequence[HeteroData], dev: Sequence[HeteroData],
                 config: TrainConfig, run_dir: str | Path, device: str | torch.device = 'cpu',
                 distributed: Distributed | None = None, profile: StageClock | None = None):
        if len(train) == 0:
            raise ValueError('The training split is empty')
        self.dist = distributed or Distributed(device=torch.device(device))
        self.device = self.dist.device
        per_rank_batch(config.batch_size, self.dist.world_size)
        check_precision(config.precision, self.device)
        self.model = model.to(self.device)
        # Models leave parameters out of some batches (no image in any tweet: no visual layer runs).
        self.ddp = (DistributedDataParallel(TrainingObjective(self.model), find_unused_parameters=True,
                                            device_ids=[self.device] if self.device.type == 'cuda' else None)
                    if self.dist.active else None)
        # Batch-level objectives gather the global batch on a group of their own, so that their
        # collectives never interleave with DDP's gradient buckets on the default group.
        self.model.batch_group = torch.distributed.new_group() if self.dist.active else None
        self.autocast_dtype = PRECISIONS[config.precision]
        # Loss scaling keeps small float16 gradients from flushing to zero; bfloat16 has float32's range.
        self.scaler = torch.amp.GradScaler('cuda', enabled=config.precision == 'fp16')
        self.train_set, self.dev_set = train, dev
        self.config = config
        self.run_dir = Path(run_dir)
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.steps_per_epoch = math.ceil(len(train) / config.batch_size)
        total = self.steps_per_epoch * config.epochs
        # The fused kernel steps all parameters at once: about 6x faster than the default
        # foreach AdamW on a CPU, where the step is a large share of a BERT-size update.
        self.optimizer = AdamW(optimizer_groups(model, config), fused=True)
        self.scheduler = linear_schedule(self.optimizer, int(config.warmup_ratio * total), total)
        self.history: list[dict[str, Any]] = []
        self.epoch = 0
        self.best_f1 = -1.0
        # Summed over every epoch of the run, whichever process trained it (a resumed run restores
        # them): an epoch cut short by an interrupt or a kill is trained again and counted once.
        self.train_seconds = 0.0
        self.tweets_seen = 0
        self.kept_epoch = 0  # the epoch last.pt holds (the one an interrupt keeps)
        self.profile = profile

    # -- data -------------------------------------------------------------------------
    def train_loader(self, epoch: int) -> DataLoader:
        return shuffled_loader(self.train_set, self.config.batch_size, self.config.seed, epoch,
                               self.dist.rank, self.dist.world_size)

    def eval_loader(self, graphs: Sequence[HeteroData]) -> DataLoader:
        return DataLoader(graphs, batch_size=self.config.eval_batch_size, shuffle=False)

    # -- state --------------------------------------------------------------------------
    def resume(self) -> bool:
        """Restores ``last.pt`` if there is one; returns whether it did.

        Raises:
            CheckpointError: ``last.pt`` cannot be read, is not a training
                state, or was written with other settings or by another model.
        """
        path = self.run_dir / LAST
        if not path.exists():
            log.info('No %s in %s: starting from scratch', LAST, self.run_dir)
            return False
        state = self._read(path)
        missing = sorted({'config', 'epoch', 'best_f1', 'history', 'train_seconds', 'tweets_seen'}
                         - set(state))
        if missing or not isinstance(state.get('config'), dict):
            raise CheckpointError(self._damaged(path, f'no training state in it (missing {missing})'))
        # A setting added since the file was written counts with its default.
        written = {**{f.name: f.default for f in fields(TrainConfig)}, **state['config']}
        if written != asdict(self.config):
            raise CheckpointError(f'{path} was written with other training settings: '
                                  f"{state['config']} vs {asdict(self.config)}; resume with the same "
                                  'settings, or start fresh in another run folder')
        if not state.get('finished'):
            # A finished run's record holds no weights: best.pt has them, and test() reads it.
            try:
                self.model.load_state_dict(state['checkpoint']['state_dict'])
                self.optimizer.load_state_dict(state['optimizer'])
                self.scheduler.load_state_dict(state['scheduler'])
                # Resumed at another world size, the batches reproduce but not the dropout masks.
                ranks = state.get('torch_rng_ranks', [])
                torch.set_rng_state(ranks[self.dist.rank] if len(ranks) == self.dist.world_size
                                    else state['torch_rng'])
                if 'grad_scaler' in state:
                    self.scaler.load_state_dict(state['grad_scaler'])
            except (KeyError, TypeError, ValueError, RuntimeError) as error:
                raise CheckpointError(f'{path} does not fit this model and optimizer '
                                      f'({type(error).__name__}: {str(error).splitlines()[0]}); was '
                                      'it written by another model? Resume with the same model, or '
                                      'start fresh in another run folder') from None
        self.epoch, self.best_f1 = state['epoch'], state['best_f1']
        self.history = json.loads(state['history'])
        self.train_seconds, self.tweets_seen = state['train_seconds'], state['tweets_seen']
        self.kept_epoch = self.epoch
        log.info('Resumed from %s after epoch %d (best dev F1 %.4f)%s', path, self.epoch, self.best_f1,
                 ': the run had finished' if state.get('finished') else '')
        return True

    def _read(self, path: Path) -> dict[str, Any]:
        """A checkpoint's contents, or a :class:`CheckpointError` naming the file."""
        try:
            state = torch.load(path, map_location='cpu', weights_only=True)
        except Exception as error:  # torch reports a cut-off zip as RuntimeError, a bad pickle as others
            raise CheckpointError(self._damaged(path, load_failure(error))) from None
        if not isinstance(state, dict):
            raise CheckpointError(self._damaged(path, f'it holds a {type(state).__name__}, not a dict'))
        return state

    def _damaged(self, path: Path, reason: str) -> str:
        best = self.run_dir / BEST
        keep = (f'or keep {best}, the best dev epoch so far (graphmner.models.load reads it)'
                if best.exists() and path != best else 'no other checkpoint of this run is usable')
        return (f'{path} is damaged and was left as it is ({reason}). It may have been cut off by a crash '
                f'or a full disk. Start fresh: move it away and run again without --resume; {keep}')

    def _save_state(self, rng_states: list[torch.Tensor]) -> None:
        """``last.pt``: the full training state while epochs remain (with the
        random state of every rank); once the run is finished, only its record
        (the weights are in ``best.pt``)."""
        state = {'epoch': self.epoch, 'best_f1': self.best_f1, 'history': json.dumps(self.history),
                 'train_seconds': self.train_seconds, 'tweets_seen': self.tweets_seen,
                 'config': asdict(self.config)}
        if self.epoch >= self.config.epochs:
            state['finished'] = True
        else:
            state.update(checkpoint=self.model.checkpoint(), optimizer=self.optimizer.state_dict(),
                         scheduler=self.scheduler.state_dict(), torch_rng=rng_states[0],
                         torch_rng_ranks=rng_states)
            if self.scaler.is_enabled():
                state['grad_scaler'] = self.scaler.state_dict()
        atomic_save(state, self.run_dir / LAST)
        self.kept_epoch = self.epoch

    # -- loop -----------------------------------------------------------------------------
    def autocast(self) -> contextlib.AbstractContextManager:
        """The training forward's mixed-precision context (none for fp32)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        start = time.perf_counter()
        with profiling(self.model, self.profile) as clock:  # its stages lie within the measured time
            losses = self._train_epoch(epoch, clock)
        self.train_seconds += time.perf_counter() - start
        return losses

    def _train_epoch(self, epoch: int, clock: StageClock | NullClock) -> dict[str, float]:
        self.model.train()
        totals: dict[str, float] = {}
        steps = tweets = 0
        loader = self.train_loader(epoch)
        global_sizes = loader.batch_sampler.global_sizes
        bar = tqdm(loader, total=self.steps_per_epoch, leave=False,
                   desc=f'epoch {epoch + 1}/{self.config.epochs}', unit='batch',
                   disable=None if self.dist.is_main else True)  # no bar off a terminal (CI, log files)
        batches = iter(bar)
        while True:
            with clock.stage(COLLATE):
                batch = next(batches, None)
            if batch is None:
                break
            with clock.stage(TO_DEVICE):
                batch = batch.to(self.device)
            with self.autocast(), clock.stage(LOSS):
                loss, parts = self.model.loss(batch) if self.ddp is None else self.ddp(batch)
            # DDP averages the ranks' gradients; weighing each rank's batch-mean loss by its share
            # of the step's global batch makes that the gradient of the global batch's mean.
            share = self.dist.world_size * batch.num_graphs / global_sizes[steps]
            with clock.stage(OPTIMIZER):
                self.optimizer.zero_grad(set_to_none=True)
            with clock.stage(HEADS_BACKWARD):  # the encoder's part is split off by watch_model's hooks
                self.scaler.scale(loss * share).backward()
            with clock.stage(OPTIMIZER):
                if self.config.max_grad_norm > 0:
                    self.scaler.unscale_(self.optimizer)
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.max_grad_norm)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.scheduler.step()
            tweets += batch.num_graphs
            steps += 1
            for key, value in parts.items():
                totals[key] = totals.get(key, 0) + value
            bar.set_postfix(loss=f"{totals['loss'] / steps:.3f}")
        # Every rank's loss parts and counts, for a log of the whole global batch.
        ranks = self.dist.gather((totals, tweets))
        self.tweets_seen += sum(count for _, count in ranks)
        merged: dict[str, float] = {}
        for rank_totals, _ in ranks:
            for key, value in rank_totals.items():
                merged[key] = merged.get(key, 0) + value
        # Float parts are per-batch losses (averaged over steps and ranks); int parts are counts (summed).
        return {key: value if isinstance(value, int) else value / max(steps * len(ranks), 1)
                for key, value in merged.items()}

    def fit(self, resume: bool = False) -> list[dict[str, Any]]:
        """Trains the remaining epochs. Under ``torchrun`` every rank calls it;
        rank 0 evaluates and writes the run folder after each epoch while the
        others wait at a barrier.

        Raises:
            TrainingInterrupted: on Ctrl-C; ``last.pt`` keeps the last finished
                epoch (a write it cut is removed, the previous file stays).
        """
        try:
            return self._fit(resume)
        except KeyboardInterrupt:
            raise TrainingInterrupted(self._interrupted(), self.kept_epoch) from None

    def _interrupted(self) -> str:
        """What an interrupt leaves: the epoch in ``last.pt``, if any."""
        epoch = min(self.kept_epoch + 1, self.config.epochs)
        if not self.kept_epoch:
            return (f'interrupted in epoch {epoch} of {self.config.epochs}, before any epoch finished: '
                    'nothing was kept, --resume starts from scratch')
        return (f'interrupted in epoch {epoch} of {self.config.epochs}: {self.run_dir / LAST} keeps epoch '
                f'{self.kept_epoch} (best dev F1 so far {self.best_f1:.4f}, in {BEST}), and --resume '
                'continues from it')

    def _fit(self, resume: bool) -> list[dict[str, Any]]:
        seed_everything(self.config.seed)
        if self.dist.is_main:
            self._prepare_run_dir(resume)
        self.dist.barrier()  # the other ranks read last.pt only once rank 0 has cleaned the folder
        if not (resume and self.resume()):
            # Visual standardisation statistics come from the training split, once
            # (a resumed run restores them with the weights).
            self.model.fit_feature_statistics(self.train_set)
        log.info('batches of %d tweets: %d per process x %d process(es)%s, %d steps an epoch, precision %s',
                 self.config.batch_size, self.config.batch_size // self.dist.world_size,
                 self.dist.world_size, ' (DDP)' if self.dist.active else '', self.steps_per_epoch,
                 self.config.precision)
        for epoch in range(self.epoch, self.config.epochs):
            seconds, tweets = self.train_seconds, self.tweets_seen
            losses = self.train_epoch(epoch)
            self.epoch = epoch + 1
            if self.dist.is_main:
                self._end_epoch(losses, self.train_seconds - seconds, self.tweets_seen - tweets)
            # Each rank's random state (dropout; rank 0's after evaluating), for a resumed run to go on
            # with the masks it would have drawn.
            rng_states = self.dist.gather(torch.get_rng_state())
            if self.dist.is_main:
                # Last: a run killed before this line redoes the epoch and rewrites the files above.
                self._save_state(rng_states)
            self.dist.barrier()
        return self.history

    def _prepare_run_dir(self, resume: bool) -> None:
        partial = remove_partial_writes(self.run_dir)
        if partial:
            log.warning('Removed %d partial file(s) left by an interrupted write: %s', len(partial),
                        ', '.join(p.name for p in partial))
        if not resume and (self.run_dir / LAST).exists():
            log.warning('Starting from scratch: %s of an earlier run will be replaced after the first '
                        'epoch (--resume continues it instead)', self.run_dir / LAST)

    def _end_epoch(self, losses: dict[str, float], seconds: float, tweets: int) -> None:
        """Rank 0: dev scores, the best checkpoint, the log, history and plot
        (each epoch's training time and tweets in the history: the run's totals
        are their sums, whichever process trained each epoch)."""
        selection, dev = self.model.selection_score(list(self.eval_loader(self.dev_set)),
                                                     self.config.scheme)
        record = {'epoch': self.epoch, **losses, 'dev_f1': dev['f1'],
                  'dev_precision': dev['precision'], 'dev_recall': dev['recall'],
                  'train_seconds': seconds, 'tweets': tweets}
        if self.model.selection_views:
            record['dev_selection'] = selection
        self.history.append(record)
        improved = selection > self.best_f1
        if improved:
            self.best_f1 = selection
            self.model.save(self.run_dir / BEST)
        parts = '  '.join(f'{key} {value:.4f}' if isinstance(value, float) else f'{key} {value}'
                          for key, value in losses.items())
        views = (f"  selection ({' + '.join(self.model.selection_views)}) {selection:.4f}"
                 if self.model.selection_views else '')
        log.info('epoch %d  %s  dev P %.4f R %.4f F1 %.4f%s%s', self.epoch, parts, dev['precision'],
                 dev['recall'], dev['f1'], views, '  (best)' if improved else '')
        for warning in self.model.epoch_warnings(losses):
            log.warning('epoch %d: %s', self.epoch, warning)
        atomic_write_text(self.run_dir / 'history.json', json.dumps(self.history, indent=2))
        plot_history(self.history, self.run_dir / 'training.png')

    def test(self, graphs: Sequence[HeteroData], name: str = 'test') -> dict[str, Any]:
        """Scores of the best dev checkpoint on ``graphs``, logged under ``name``
        (of the model as it is before any epoch ran).

        Raises:
            CheckpointError: ``best.pt`` is missing after training, or damaged.
        """
        best = self.run_dir / BEST
        if best.exists():
            state = self._read(best)
            if 'state_dict' not in state:
                raise CheckpointError(self._damaged(best, 'no model weights in it'))
            self.model.load_state_dict(state['state_dict'])
        elif self.history:
            raise CheckpointError(f'{best} is missing: the run trained {self.epoch} epoch(s) but its best '
                                  'dev checkpoint is gone. Train again in a new run folder')
        scores = self.model.evaluate(self.eval_loader(graphs), self.config.scheme)
        # One line: the command prints the per-type tables once, at the end.
        log.info('%s, best dev checkpoint: P %.2f R %.2f F1 %.2f', name, 100 * scores['precision'],
                 100 * scores['recall'], 100 * scores['f1'])
        return scores

    @property
    def tweets_per_second(self) -> float:
        return self.tweets_seen / self.train_seconds if self.train_seconds else 0.0


def plot_history(history: list[dict[str, Any]], path: Path) -> None:
    """Training loss and dev F1 per epoch, side by side, as a PNG."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    epochs = [h['epoch'] for h in history]
    fig, (ax_loss, ax_f1) = plt.subplots(1, 2, figsize=(9, 3.4))
    ax_loss.plot(epochs, [h['loss'] for h in history], marker='o')
    ax_loss.set(xlabel='epoch', ylabel='training loss', title='Training loss')
    ax_f1.plot(epochs, [100 * h['dev_f1'] for h in history], marker='o', color='tab:green')
    ax_f1.set(xlabel='epoch', ylabel='F1 (%)', title='Dev span F1')
    for ax in (ax_loss, ax_f1):
        ax.grid(alpha=0.3)
        ax.set_xticks(epochs)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format='png', dpi=110))
    plt.close(fig)
