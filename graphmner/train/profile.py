r"""Where the wall-clock time of a training step (or of a prediction) goes, stage by stage.

    >>> clock = StageClock()
    >>> trainer = Trainer(model, graphs, [], config, run_dir, profile=clock)
    >>> trainer.train_epoch(0)
    >>> print(clock.table(steps=trainer.steps_per_epoch))

A :class:`StageClock` charges every moment of the time it runs to exactly one
stage: the innermost one open (a stage opened inside another pauses it), or
:data:`OTHER` when none is. The stages therefore add up to the measured time
by construction, and :data:`OTHER` is what no stage names (the progress bar,
the epoch's bookkeeping).

:func:`watch_model` opens stages from inside a model, through hooks that it
removes on exit: the encoder's forward (its tokenisation apart), the forward of
each other top-level child module (UMGF's ``layers``, MAF's ``matching``, GMF's
``prefix``, ...), the model's own forward code, the CRF NLL, the auxiliary
losses (everything :meth:`~graphmner.models.base.MNERModel.auxiliary_losses`
computes, nested calls included), Viterbi decoding and the CRF marginals. In
backward, tensor hooks split :data:`HEADS_BACKWARD` from
:data:`ENCODER_BACKWARD`: the gradient reaching an output of the encoder starts
the encoder's backward, the gradient reaching an output of any other module
(GMF's visual prefix, read inside the encoder, included) goes back to the heads.
:func:`profiling` runs a clock with those hooks, or, without a clock, installs
nothing: the trainer and the tagger run as they are.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from torch import Tensor, nn

from ..models.base import MNERModel

#: Time inside the clock's run that no stage names.
OTHER = 'other'
#: Stages of the trainer's step (those of the model's forward come from :func:`watch_model`).
COLLATE = 'collate'                 # the DataLoader's next(): graphs batched
TO_DEVICE = 'to device'
LOSS = 'loss (own code)'            # MNERModel.loss outside the forward, the NLL and the auxiliary losses
HEADS_BACKWARD = 'backward: heads'  # fusion layers, emissions and CRF
ENCODER_BACKWARD = 'backward: encoder'
OPTIMIZER = 'clip + optimizer + schedule'
#: Stages :func:`watch_model` opens.
TOKENIZE = 'tokenize'
ENCODER_FORWARD = 'encoder forward'
CRF_NLL = 'crf nll'
AUXILIARY_LOSSES = 'auxiliary losses'
VITERBI = 'viterbi'
MARGINALS = 'marginals'
#: Stages of :meth:`graphmner.predict.Tagger.predict` (besides the model's).
BUILD_GRAPHS = 'build graphs'       # tokens, features from the cache, the graph
BATCHING = 'batching'               # the model's graph transform, Batch.from_data_list, to the device
DECODING = 'decoding'               # MNERModel.decode outside the forward, Viterbi and marginals
EXPLAIN = 'explain'
RESULTS = 'results'                 # the Prediction objects
#: The stages of the text encoder (what a bare encoder loop also pays).
ENCODER_STAGES = (TOKENIZE, ENCODER_FORWARD, ENCODER_BACKWARD)


def forward_stage(name: str) -> str:
    """The stage of the forward of the model's top-level child ``name`` (``'forward: layers'``)."""
    return f'forward: {name}'


class StageClock:
    """Seconds per stage, each moment charged to the innermost open stage.

    Args:
        synchronize (bool, optional): wait for the CUDA device at every stage
            change, so that a stage is charged with its kernels rather than
            with their launch. (default: :obj:`False`)

    Attributes:
        seconds (dict[str, float]): seconds per stage, :data:`OTHER` included,
            summed over every :meth:`running` block.
    """

    def __init__(self, synchronize: bool = False):
        self.synchronize = synchronize and torch.cuda.is_available()
        self.seconds: dict[str, float] = {}
        self._stack: list[str] = []
        # Open stages from the outermost inclusive one in (0: no inclusive stage is open).
        self._inclusive = 0
        self._since: float | None = None  # None: not running

    @property
    def current(self) -> str | None:
        """The stage charged now (:data:`OTHER` outside any stage); None when not running."""
        if self._since is None:
            return None
        return self._stack[-1] if self._stack else OTHER

    @property
    def total(self) -> float:
        return sum(self.seconds.values())

    def _charge(self) -> None:
        """Charges the time since the last change to the stage charged until now."""
        if self._since is None:
            return
        if self.synchronize:
            torch.cuda.synchronize()
        now = time.perf_counter()
        key = self.current
        self.seconds[key] = self.seconds.get(key, 0.0) + now - self._since
        self._since = now

    @contextmanager
    def running(self) -> Iterator[StageClock]:
        """The measured time: every moment inside the block is charged to a stage."""
        if self._since is not None:
            raise RuntimeError('The StageClock is already running')
        if self.synchronize:
            torch.cuda.synchronize()
        self._since = time.perf_counter()
        try:
            yield self
        finally:
            self._charge()
            self._since = None
            self._stack.clear()
            self._inclusive = 0

    def enter(self, name: str, inclusive: bool = False) -> None:
        """Opens stage ``name`` (charged from now on); an ``inclusive`` stage is
        also charged with every stage opened inside it. Inside an inclusive
        stage, a nested stage keeps charging the enclosing one."""
        self._charge()
        self._stack.append(self._stack[-1] if self._inclusive else name)
        self._inclusive += bool(self._inclusive or inclusive)

    def exit(self) -> None:
        """Closes the innermost stage; the one it was opened in is charged again."""
        self._charge()
        if self._stack:
            self._stack.pop()
            self._inclusive = max(self._inclusive - 1, 0)

    @contextmanager
    def stage(self, name: str, inclusive: bool = False) -> Iterator[None]:
        """:meth:`enter` / :meth:`exit` around the block."""
        self.enter(name, inclusive)
        try:
            yield
        finally:
            self.exit()

    def switch(self, name: str, among: tuple[str, ...]) -> None:
        """Charges ``name`` instead of the open stage from now on, when the open
        stage is one of ``among`` (the backward split: the stage stays open, the
        name charged changes)."""
        if self._stack and self._stack[-1] in among and self._stack[-1] != name:
            self._charge()
            self._stack[-1] = name

    def table(self, steps: int, unit: str = 'step') -> str:
        """Seconds per ``unit`` (the total over ``steps`` of them) and share of the total of each
        stage, largest first, then the total."""
        steps = max(steps, 1)
        total = self.total or 1.0
        width = max([len('stage'), len('total'), *map(len, self.seconds)])
        lines = [f'{"stage":<{width}}  {"s/" + unit:>9}  {"share":>6}']
        for name, seconds in sorted(self.seconds.items(), key=lambda item: -item[1]):
            lines.append(f'{name:<{width}}  {seconds / steps:9.4f}  {seconds / total:6.1%}')
        lines.append(f'{"total":<{width}}  {self.total / steps:9.4f}  {1:6.1%}')
        return '\n'.join(lines)

    def largest(self, besides: tuple[str, ...] = ()) -> tuple[str, float]:
        """The stage of the most seconds but those in ``besides``, and its seconds."""
        rest = {name: s for name, s in self.seconds.items() if name not in besides}
        name = max(rest, key=rest.get)
        return name, rest[name]


class NullClock:
    """The clock of an unprofiled run: its stages are one shared empty context (no timing, no hook)."""

    _nothing = nullcontext()

    def stage(self, name: str, inclusive: bool = False) -> nullcontext:
        return self._nothing


#: The one :class:`NullClock`.
NULL_CLOCK = NullClock()


def tensors_in(value: Any) -> Iterator[Tensor]:
    """Every tensor in ``value``: a tensor, a tuple / list / dict of them, or a
    dataclass or mapping-like output (``MNEROutput``, ``EncoderOutput``, a
    transformers ``ModelOutput``), nested."""
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from tensors_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from tensors_in(item)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from tensors_in(getattr(value, f.name))


@contextmanager
def profiling(model: MNERModel, clock: StageClock | None) -> Iterator[StageClock | NullClock]:
    """``clock`` running with :func:`watch_model`'s hooks on ``model`` inside the block (it yields the
    clock whose stages the caller opens); :data:`NULL_CLOCK` and no hook when ``clock`` is None."""
    if clock is None:
        yield NULL_CLOCK
        return
    with clock.running(), watch_model(model, clock):
        yield clock


@contextmanager
def watch_model(model: MNERModel, clock: StageClock) -> Iterator[None]:
    """Opens the model's stages on ``clock`` inside the block (see the module);
    every hook and wrapper is removed on exit, whatever happens inside.

    Args:
        model (MNERModel): any model; its top-level children but the encoder
            and the CRF are its fusion layers, each a stage of its own (the
            members of a ``ModuleList`` or ``ModuleDict`` charged to it).
        clock (StageClock): charged with the stages.
    """
    backward = (HEADS_BACKWARD, ENCODER_BACKWARD)
    handles: list[Any] = []
    wrapped: list[tuple[Any, str]] = []

    def mark_backward(value: Any, name: str) -> None:
        """Hooks every tensor of ``value`` that takes a gradient: backward reaching it charges ``name``."""
        for tensor in tensors_in(value):
            if tensor.requires_grad:
                tensor.register_hook(lambda grad: clock.switch(name, backward))

    def watch_module(module: nn.Module, name: str, backward_stage: str) -> None:
        def before(_module, _args):
            clock.enter(name)

        def after(_module, _args, output):
            clock.exit()
            if torch.is_grad_enabled():
                mark_backward(output, backward_stage)

        handles.append(module.register_forward_pre_hook(before))
        handles.append(module.register_forward_hook(after, always_call=True))

    def wrap(owner: Any, method: str, name: str, inclusive: bool = False) -> None:
        """Replaces ``owner.method`` by the same call inside stage ``name`` (an instance attribute)."""
        original = getattr(owner, method)

        def timed(*args, **kwargs):
            with clock.stage(name, inclusive):
                result = original(*args, **kwargs)
            if torch.is_grad_enabled():
                mark_backward(result, HEADS_BACKWARD)
            return result

        setattr(owner, method, timed)
        wrapped.append((owner, method))

    try:
        watch_module(model, forward_stage(f'{model.name} (own code)'), HEADS_BACKWARD)
        watch_module(model.encoder, ENCODER_FORWARD, ENCODER_BACKWARD)
        for name, child in model.named_children():
            if child is model.encoder or child is model.crf:
                continue
            # A container is never called: its members are, each charged to the container's stage.
            members = child.values() if isinstance(child, nn.ModuleDict) else \
                child if isinstance(child, nn.ModuleList) else [child]
            for member in members:
                watch_module(member, forward_stage(name), HEADS_BACKWARD)
        wrap(model.encoder, 'tokenize', TOKENIZE)
        wrap(model.crf, 'nll', CRF_NLL)
        wrap(model.crf, 'decode', VITERBI)
        wrap(model.crf, 'marginals', MARGINALS)
        wrap(model, 'auxiliary_losses', AUXILIARY_LOSSES, inclusive=True)
        yield
    finally:
        for handle in handles:
            handle.remove()
        for owner, method in wrapped:
            delattr(owner, method)  # the class's method shows through again
