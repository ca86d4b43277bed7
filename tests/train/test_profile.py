"""The per-stage profile of a training step (graphmner.train.profile) on tiny random models: the
stages named, their sum the measured epoch time, the backward split, no hook left behind."""
import time

import pytest
import torch
from conftest import fake_features

from graphmner import models
from graphmner.data.conll import read_conll
from graphmner.data.demo import demo_split_path
from graphmner.graph.builder import build_graph
from graphmner.train import TrainConfig, Trainer
from graphmner.train.profile import (
    AUXILIARY_LOSSES,
    COLLATE,
    CRF_NLL,
    ENCODER_BACKWARD,
    ENCODER_FORWARD,
    HEADS_BACKWARD,
    LOSS,
    OPTIMIZER,
    OTHER,
    TO_DEVICE,
    TOKENIZE,
    StageClock,
    forward_stage,
)

CONFIG = TrainConfig(epochs=1, batch_size=4, encoder_lr=1e-3, head_lr=1e-3)  # 24 demo tweets: 6 steps
STEP_STAGES = {COLLATE, TO_DEVICE, LOSS, TOKENIZE, ENCODER_FORWARD, CRF_NLL, AUXILIARY_LOSSES,
               HEADS_BACKWARD, ENCODER_BACKWARD, OPTIMIZER}


@pytest.fixture(scope='module')
def tweets():
    return read_conll(demo_split_path('train'))


def hooks_of(model) -> list[int]:
    """How many forward (pre-)hooks each module has, and which methods are replaced on the instance."""
    counts = [len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()]
    methods = ('tokenize', 'nll', 'decode', 'marginals', 'auxiliary_losses')
    replaced = [m for owner in (model, model.encoder, model.crf) for m in methods if m in vars(owner)]
    return counts + replaced


def assert_stages_cover(clock, measured):
    """The named stages add up to the measured time but for a small remainder, 'other' and
    the hooks' installation (the clock runs inside the measured time)."""
    named = clock.total - clock.seconds[OTHER]
    assert clock.total <= measured
    assert measured - named < 0.1 * measured


def profiled_epoch(model, graphs, tmp_path):
    clock = StageClock()
    trainer = Trainer(model, [model.graph_transform()(g) for g in graphs], [], CONFIG, tmp_path,
                      profile=clock)
    trainer.train_epoch(0)
    return clock, trainer


def test_bert_crf_names_every_stage_and_they_add_up_to_the_epoch(tiny_encoder, tweets, tmp_path):
    torch.manual_seed(1)
    model = models.build('bert-crf', encoder=tiny_encoder)
    before = hooks_of(model)
    clock, trainer = profiled_epoch(model, [build_graph(t) for t in tweets], tmp_path)
    children = {forward_stage(name) for name in ('dropout', 'emission', 'bert-crf (own code)')}
    assert set(clock.seconds) == STEP_STAGES | children | {OTHER}
    assert all(seconds > 0 for name, seconds in clock.seconds.items() if name != AUXILIARY_LOSSES)
    assert_stages_cover(clock, trainer.train_seconds)
    assert hooks_of(model) == before  # every hook handle removed, every wrapped method restored


def test_maf_names_its_own_layers_and_auxiliary_losses(tiny_encoder, tweets, tmp_path):
    torch.manual_seed(1)
    model = models.build('maf', encoder=tiny_encoder, visual_dim=8, aux_sources=['tag'])
    graphs = [build_graph(t, fake_features(2, 8, seed=i)) for i, t in enumerate(tweets)]
    before = hooks_of(model)
    clock, trainer = profiled_epoch(model, graphs, tmp_path)
    layers = {forward_stage(name) for name in ('interaction', 'matching', 'fusion_gate', 'region_projection',
                                               'text_head', 'image_head', 'aux_reader', 'maf (own code)')}
    assert STEP_STAGES | layers <= set(clock.seconds)
    assert clock.seconds[AUXILIARY_LOSSES] > 0
    assert_stages_cover(clock, trainer.train_seconds)
    assert hooks_of(model) == before


def test_an_unprofiled_trainer_puts_no_hook_on_the_model(tiny_encoder, tweets, tmp_path):
    torch.manual_seed(1)
    model = models.build('bert-crf', encoder=tiny_encoder)
    before = hooks_of(model)
    seen = []
    loss = model.loss
    model.loss = lambda batch: (seen.append(hooks_of(model)), loss(batch))[1]  # hooks during the step
    Trainer(model, [build_graph(t) for t in tweets], [], CONFIG, tmp_path).train_epoch(0)
    assert seen and all(hooks == before for hooks in seen)


def test_backward_is_split_where_the_gradient_reaches_the_encoder(tiny_encoder, tweets, tmp_path):
    """A known delay inside the encoder's backward and one in the emission layer's: each lands in its
    own backward stage (and a delay in a fusion forward in that layer's stage)."""
    torch.manual_seed(1)
    model = models.build('bert-crf', encoder=tiny_encoder)
    encoder_delay, heads_delay = 0.04, 0.02
    sleep = lambda seconds: lambda *_: time.sleep(seconds)
    # Hooks of the test's own, after the module's backward: layer 0 is the encoder's, emission the heads'.
    model.encoder.model.encoder.layer[0].register_full_backward_hook(sleep(encoder_delay))
    model.emission.register_full_backward_hook(sleep(heads_delay))
    model.dropout.register_forward_hook(sleep(heads_delay))
    clock, trainer = profiled_epoch(model, [build_graph(t) for t in tweets], tmp_path)
    steps = trainer.steps_per_epoch
    assert steps * encoder_delay <= clock.seconds[ENCODER_BACKWARD] < steps * (encoder_delay + heads_delay)
    assert steps * heads_delay <= clock.seconds[HEADS_BACKWARD] < steps * encoder_delay
    assert steps * heads_delay <= clock.seconds[forward_stage('dropout')] < steps * encoder_delay


def test_nested_stages_charge_the_innermost_and_inclusive_ones_keep_theirs():
    clock = StageClock()
    with clock.running():
        with clock.stage('outer'):
            time.sleep(0.02)
            with clock.stage('inner'):
                time.sleep(0.03)
        with clock.stage('whole', inclusive=True):
            with clock.stage('inner'):
                time.sleep(0.02)
    assert set(clock.seconds) == {'outer', 'inner', 'whole', OTHER}
    assert 0.02 <= clock.seconds['outer'] < 0.03 <= clock.seconds['inner'] < 0.04
    assert clock.seconds['whole'] >= 0.02
