import json

import pytest
import torch

from graphmner import models
from graphmner.data.conll import read_conll
from graphmner.data.demo import demo_split_path
from graphmner.graph.builder import build_graph
from graphmner.train import TrainConfig, Trainer, linear_schedule
from graphmner.train.trainer import BEST, LAST


@pytest.fixture(scope='module')
def splits():
    return {split: [build_graph(t) for t in read_conll(demo_split_path(split))] for split in ('train', 'dev')}


def train(tiny_encoder, splits, run_dir, epochs=2, resume=False, interrupt_at=None):
    torch.manual_seed(1)
    model = models.build('bert-crf', encoder=tiny_encoder)
    config = TrainConfig(epochs=epochs, batch_size=8, encoder_lr=1e-3, head_lr=1e-2, seed=1)
    trainer = Trainer(model, splits['train'], splits['dev'], config, run_dir)
    if interrupt_at is not None:
        original = model.loss
        calls = {'n': 0}

        def dying_loss(batch):
            calls['n'] += 1
            if calls['n'] == interrupt_at:
                raise KeyboardInterrupt  # as if the run were killed mid-epoch
            return original(batch)
        model.loss = dying_loss
    trainer.fit(resume=resume)
    return trainer, trainer.test(splits['dev'])


def test_same_seed_gives_identical_metrics(tiny_encoder, splits, tmp_path):
    first, scores_a = train(tiny_encoder, splits, tmp_path / 'a')
    second, scores_b = train(tiny_encoder, splits, tmp_path / 'b')
    assert scores_a == scores_b
    assert [h['loss'] for h in first.history] == [h['loss'] for h in second.history]
    assert first.history[-1]['loss'] < first.history[0]['loss']


def test_killed_run_resumes_and_ends_like_an_uninterrupted_one(tiny_encoder, splits, tmp_path):
    _, full = train(tiny_encoder, splits, tmp_path / 'full')
    run = tmp_path / 'killed'
    with pytest.raises(KeyboardInterrupt):
        train(tiny_encoder, splits, run, interrupt_at=5)  # epoch 1 has 3 batches: dies in epoch 2
    assert (run / LAST).exists() and (run / BEST).exists()
    assert json.loads((run / 'history.json').read_text())[-1]['epoch'] == 1
    resumed, scores = train(tiny_encoder, splits, run, resume=True)
    assert [h['epoch'] for h in resumed.history] == [1, 2]
    assert scores == full


def test_run_folder_has_plot_and_loadable_checkpoints(tiny_encoder, splits, tmp_path):
    train(tiny_encoder, splits, tmp_path, epochs=1)
    assert (tmp_path / 'training.png').read_bytes()[:4] == b'\x89PNG'
    assert models.load(tmp_path / BEST).name == 'bert-crf'
    state = torch.load(tmp_path / LAST, weights_only=True)
    assert state['epoch'] == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]  # no temp files left


def test_resume_refuses_other_settings(tiny_encoder, splits, tmp_path):
    train(tiny_encoder, splits, tmp_path, epochs=1)
    model = models.build('bert-crf', encoder=tiny_encoder)
    trainer = Trainer(model, splits['train'], splits['dev'], TrainConfig(epochs=1, batch_size=4), tmp_path)
    with pytest.raises(ValueError, match='other training settings'):
        trainer.resume()


def test_linear_schedule_warms_up_then_decays():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = linear_schedule(optimizer, warmup=2, total=6)
    lrs = []
    for _ in range(6):
        lrs.append(optimizer.param_groups[0]['lr'])
        optimizer.step()
        schedule.step()
    assert lrs == pytest.approx([0.5, 1.0, 1.0, 0.75, 0.5, 0.25])


@pytest.mark.integration
def test_real_minilm_learns_real_tweets(minilm, shared_data, tmp_path):
    """BERT-CRF on 64 real Twitter-2017 tweets with the pretrained MiniLM: the loss falls."""
    tweets = read_conll(shared_data / 'twitter2017' / 'train.txt')[:64]
    graphs = [build_graph(t) for t in tweets]
    torch.manual_seed(1)
    model = models.build('bert-crf', encoder=minilm)
    config = TrainConfig(epochs=3, batch_size=16, encoder_lr=1e-4, head_lr=1e-2, seed=1)
    trainer = Trainer(model, graphs, graphs[:16], config, tmp_path)
    history = trainer.fit()
    assert history[-1]['loss'] < 0.7 * history[0]['loss']
    assert trainer.tweets_per_second > 0
