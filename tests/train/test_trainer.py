import json
import shutil

import pytest
import torch

from graphmner import models
from graphmner.data.conll import read_conll
from graphmner.data.demo import demo_split_path
from graphmner.graph.builder import build_graph
from graphmner.train import (
    CheckpointError,
    TrainConfig,
    Trainer,
    TrainingInterrupted,
    linear_schedule,
    optimizer_groups,
)
from graphmner.train.trainer import BEST, LAST

CONFIG = dict(batch_size=4, encoder_lr=1e-2, head_lr=1e-2, seed=1)  # 24 tweets: 6 batches an epoch


@pytest.fixture(scope='module')
def splits():
    """The demo's 24 training tweets; as dev, 8 of them, so that the tiny model's
    dev F1 moves within two epochs (on unseen tweets it stays 0)."""
    train = [build_graph(t) for t in read_conll(demo_split_path('train'))]
    return {'train': train, 'dev': train[:8]}


def trainer_for(tiny_encoder, splits, run_dir, epochs=2, **overrides):
    torch.manual_seed(1)
    model = models.build('bert-crf', encoder=tiny_encoder)
    config = TrainConfig(epochs=epochs, **{**CONFIG, **overrides})
    return Trainer(model, splits['train'], splits['dev'], config, run_dir)


def train(tiny_encoder, splits, run_dir, epochs=2, resume=False, interrupt_at=None):
    trainer = trainer_for(tiny_encoder, splits, run_dir, epochs)
    if interrupt_at is not None:
        original = trainer.model.loss
        calls = {'n': 0}

        def dying_loss(batch):
            calls['n'] += 1
            if calls['n'] == interrupt_at:
                raise KeyboardInterrupt  # as if the run were killed mid-epoch
            return original(batch)
        trainer.model.loss = dying_loss
    trainer.fit(resume=resume)
    return trainer


def weights(model):
    return {name: tensor.clone() for name, tensor in model.state_dict().items()}


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    different = [name for name in a if not torch.equal(a[name], b[name])]
    assert not different, f'{len(different)} tensors differ, e.g. {different[:3]}'


def losses(history):
    """Every per-epoch number but the timings."""
    return [{k: v for k, v in h.items() if 'second' not in k} for h in history]


@pytest.fixture(scope='module')
def uninterrupted(tiny_encoder, splits, tmp_path_factory):
    """A 2-epoch run: its history, final weights, best checkpoint and dev scores."""
    run = tmp_path_factory.mktemp('uninterrupted')
    trainer = train(tiny_encoder, splits, run)
    final = weights(trainer.model)
    return {'run': run, 'history': trainer.history, 'weights': final,
            'best': torch.load(run / BEST, weights_only=True)['state_dict'],
            'scores': trainer.test(splits['dev'])}


def test_same_seed_gives_identical_metrics(tiny_encoder, splits, uninterrupted, tmp_path):
    again = train(tiny_encoder, splits, tmp_path)
    assert losses(again.history) == losses(uninterrupted['history'])
    assert_same_weights(weights(again.model), uninterrupted['weights'])
    assert again.test(splits['dev']) == uninterrupted['scores']
    # the setup learns: the loss falls, dev F1 rises
    history = uninterrupted['history']
    assert history[-1]['loss'] < 0.8 * history[0]['loss']
    assert history[-1]['dev_f1'] > history[0]['dev_f1'] and uninterrupted['scores']['f1'] > 0.3


@pytest.fixture(scope='module')
def interrupted(tiny_encoder, splits, tmp_path_factory):
    """The run folder of the same run interrupted in the middle of epoch 2, and the interrupt."""
    run = tmp_path_factory.mktemp('killed')
    with pytest.raises(TrainingInterrupted) as info:
        train(tiny_encoder, splits, run, interrupt_at=9)  # epoch 1 has 6 batches: dies in epoch 2
    return run, info.value


@pytest.fixture(scope='module')
def killed(interrupted):
    return interrupted[0]


def test_an_interrupt_says_what_last_pt_keeps(interrupted, tiny_encoder, splits, tmp_path):
    run, error = interrupted
    best = torch.load(run / LAST, weights_only=True)['best_f1']
    assert isinstance(error, KeyboardInterrupt) and error.kept_epoch == 1
    assert str(error) == (f'interrupted in epoch 2 of 2: {run / LAST} keeps epoch 1 (best dev F1 so far '
                          f'{best:.4f}, in best.pt), and --resume continues from it')
    with pytest.raises(TrainingInterrupted) as info:
        train(tiny_encoder, splits, tmp_path, interrupt_at=2)
    assert info.value.kept_epoch == 0 and str(info.value) == (
        'interrupted in epoch 1 of 2, before any epoch finished: nothing was kept, --resume starts from '
        'scratch')


def test_killed_run_resumes_and_ends_like_an_uninterrupted_one(tiny_encoder, splits, uninterrupted, killed,
                                                               tmp_path):
    shutil.copytree(killed, tmp_path, dirs_exist_ok=True)
    assert json.loads((tmp_path / 'history.json').read_text())[-1]['epoch'] == 1
    state = torch.load(tmp_path / LAST, weights_only=True)
    assert state['epoch'] == 1 and state['optimizer']['state']  # the full state while unfinished
    resumed = train(tiny_encoder, splits, tmp_path, resume=True)
    # weights, optimizer moments, schedule and RNG (dropout) restored: the numbers of the run without a kill
    assert losses(resumed.history) == losses(uninterrupted['history'])
    # time and tweets of both parts: epoch 1 as the killed trainer timed it, epoch 2 as the resumed one did
    first = json.loads(state['history'])[0]['train_seconds']
    assert first > 0 and resumed.history[0]['train_seconds'] == first == state['train_seconds']
    assert resumed.train_seconds == pytest.approx(first + resumed.history[1]['train_seconds'])
    assert resumed.tweets_seen == 48 and [h['tweets'] for h in resumed.history] == [24, 24]
    assert_same_weights(weights(resumed.model), uninterrupted['weights'])
    assert_same_weights(torch.load(tmp_path / BEST, weights_only=True)['state_dict'], uninterrupted['best'])
    assert resumed.test(splits['dev']) == uninterrupted['scores']


def test_a_finished_run_keeps_its_weights_once(tiny_encoder, splits, uninterrupted, tmp_path, monkeypatch):
    run = uninterrupted['run']
    state = torch.load(run / LAST, weights_only=True)
    assert state['finished'] and state['epoch'] == 2
    assert not {'checkpoint', 'optimizer', 'scheduler'} & set(state)  # best.pt is the one model file
    assert (run / LAST).stat().st_size < 0.01 * (run / BEST).stat().st_size
    assert models.load(run / BEST).name == 'bert-crf'
    assert (run / 'training.png').read_bytes()[:4] == b'\x89PNG'
    assert not [p for p in run.iterdir() if p.name.startswith('.')]  # no temp files left
    # --resume of a finished run trains nothing and reports the same run again
    trainer = trainer_for(tiny_encoder, splits, run)
    monkeypatch.setattr(trainer, 'train_epoch', lambda epoch: pytest.fail('a finished run trained again'))
    assert losses(trainer.fit(resume=True)) == losses(uninterrupted['history'])
    assert trainer.test(splits['dev']) == uninterrupted['scores']


@pytest.mark.parametrize('damage', ['truncated', 'garbage', 'not-a-state', 'other-model'])
def test_a_damaged_last_pt_is_named_and_left_alone(tiny_encoder, splits, killed, tmp_path, damage):
    shutil.copytree(killed, tmp_path, dirs_exist_ok=True)
    last = tmp_path / LAST
    good = last.read_bytes()
    if damage == 'truncated':
        last.write_bytes(good[:len(good) // 3])
    elif damage == 'garbage':
        last.write_bytes(b'\x00' * 64)
    elif damage == 'not-a-state':
        torch.save({'epoch': 1}, last)
    else:
        state = torch.load(last, weights_only=True)
        state['checkpoint']['state_dict'] = {'emission.weight': torch.zeros(3, 3)}
        torch.save(state, last)
    damaged = last.read_bytes()
    trainer = trainer_for(tiny_encoder, splits, tmp_path)
    with pytest.raises(CheckpointError) as error:
        trainer.fit(resume=True)
    message = str(error.value)
    assert str(last) in message and 'start fresh' in message.lower()
    if damage != 'other-model':
        assert 'without --resume' in message and f'keep {tmp_path / BEST}' in message
    assert last.read_bytes() == damaged  # never overwritten


def test_a_damaged_best_pt_is_named(tiny_encoder, splits, tmp_path):
    trainer = train(tiny_encoder, splits, tmp_path, epochs=1)
    best = tmp_path / BEST
    best.write_bytes(best.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=f'{best} is damaged'):
        trainer.test(splits['dev'])
    best.unlink()
    with pytest.raises(CheckpointError, match=f'{best} is missing'):
        trainer.test(splits['dev'])


def test_resume_refuses_other_settings(tiny_encoder, splits, uninterrupted):
    model = models.build('bert-crf', encoder=tiny_encoder)
    trainer = Trainer(model, splits['train'], splits['dev'], TrainConfig(epochs=1, batch_size=4),
                      uninterrupted['run'])
    with pytest.raises(CheckpointError, match='other training settings'):
        trainer.resume()


def test_the_best_dev_epoch_is_kept(tiny_encoder, splits, tmp_path, monkeypatch):
    """Dev scores 0.5, 0.2, 0.5: best.pt holds epoch 1 (a tie does not replace it), test() scores it."""
    small = {'train': splits['train'][:8], 'dev': splits['dev'][:2]}
    trainer = trainer_for(tiny_encoder, small, tmp_path, epochs=3)
    model, real = trainer.model, trainer.model.selection_score
    scripted, after_epoch = iter([0.5, 0.2, 0.5]), []

    def selection_score(batches, scheme):
        after_epoch.append(weights(model))
        return next(scripted), real(batches, scheme)[1]
    monkeypatch.setattr(model, 'selection_score', selection_score)
    trainer.fit()
    assert trainer.best_f1 == 0.5 and len(after_epoch) == 3
    assert not torch.equal(after_epoch[0]['emission.weight'], after_epoch[2]['emission.weight'])
    assert_same_weights(torch.load(tmp_path / BEST, weights_only=True)['state_dict'], after_epoch[0])
    trainer.test(small['dev'])
    assert_same_weights(weights(model), after_epoch[0])


def test_no_weight_decay_on_biases_and_norms(tiny_encoder):
    """With zero gradients an AdamW step only decays: W <- W (1 - lr wd) for matrices,
    biases and LayerNorm weights stay as they are."""
    torch.manual_seed(0)
    model = models.build('bert-crf', encoder=tiny_encoder)
    config = TrainConfig(encoder_lr=0.1, head_lr=0.2, weight_decay=0.5)
    optimizer = torch.optim.AdamW(optimizer_groups(model, config))
    before = weights(model)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    encoder = {id(p) for p in model.encoder.parameters()}
    kinds = {'bias': 0, 'norm': 0, 'matrix': 0}
    for name, p in model.named_parameters():
        if name.endswith('bias') or 'LayerNorm' in name:
            kinds['norm' if 'LayerNorm' in name else 'bias'] += 1
            assert torch.equal(p, before[name]), f'{name} was decayed'
        elif p.ndim == 2:
            kinds['matrix'] += 1
            lr = config.encoder_lr if id(p) in encoder else config.head_lr
            torch.testing.assert_close(p, before[name] * (1 - lr * config.weight_decay), msg=name)
    assert min(kinds.values()) > 0, kinds


def test_gradients_are_clipped_to_max_grad_norm(tiny_encoder, splits, tmp_path):
    small = {'train': splits['train'][:8], 'dev': splits['dev'][:2]}
    norms = {}
    for max_norm in (0.0, 0.5):
        trainer = trainer_for(tiny_encoder, small, tmp_path / str(max_norm), epochs=1, batch_size=4,
                              max_grad_norm=max_norm)
        seen = norms.setdefault(max_norm, [])

        def record_norm(optimizer, args, kwargs, seen=seen, trainer=trainer):  # before each step
            seen.append(float(torch.linalg.vector_norm(
                torch.stack([p.grad.norm() for p in trainer.model.parameters() if p.grad is not None]))))
        trainer.optimizer.register_step_pre_hook(record_norm)
        trainer.train_epoch(0)
    assert len(norms[0.5]) == 2
    assert max(norms[0.0]) > 0.5                                   # the bound bites ...
    assert max(norms[0.5]) <= 0.5 * (1 + 1e-4)                     # ... and holds
    assert norms[0.5][0] == pytest.approx(0.5, rel=1e-4)           # clipped, not zeroed


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
