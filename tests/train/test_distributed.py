"""Data-parallel training: the global-batch sampler, the process-group
settings, mixed precision, and real 2-process ``torchrun`` runs of
``experiments/run.py`` (gloo on this CPU) against a 1-process run."""
import json
from collections import Counter
from datetime import timedelta

import pytest
import torch
from conftest import ROOT
from test_run_recovery import finish, kill_when_paused, launch
from torch_geometric.data import Batch
from torch_geometric.loader import DataLoader
from tqdm.auto import tqdm

from graphmner import models
from graphmner.cli import main
from graphmner.data.conll import read_conll
from graphmner.data.demo import demo_split_path
from graphmner.features.types import VisualWidths
from graphmner.graph import load_dataset
from graphmner.graph.builder import build_graph
from graphmner.train import TrainConfig, Trainer
from graphmner.train.distributed import Distributed, GlobalBatchSampler, backend_for, per_rank_batch
from graphmner.train.trainer import check_precision


def steps(size, global_batch, seed, epoch, world_size):
    """Per step, the examples all ranks take together (a multiset), and each rank's count."""
    ranks = [GlobalBatchSampler(size, global_batch, seed, epoch, rank, world_size).batches
             for rank in range(world_size)]
    assert len({len(r) for r in ranks}) == 1, 'every rank takes the same number of steps'
    return [(Counter(i for r in step for i in r), [len(r) for r in step]) for step in zip(*ranks)]


@pytest.mark.parametrize('size, global_batch, world_size', [(24, 4, 2), (30, 8, 2), (30, 8, 4), (27, 6, 2),
                                                         (27, 6, 3), (8, 6, 2)])
def test_ranks_together_take_the_one_process_batch_of_every_step(size, global_batch, world_size):
    for epoch in range(3):
        one = steps(size, global_batch, seed=7, epoch=epoch, world_size=1)
        many = steps(size, global_batch, seed=7, epoch=epoch, world_size=world_size)
        assert [examples for examples, _ in many] == [examples for examples, _ in one]
        # equal shares wherever the step's batch divides; the last at most one apart
        assert all(counts == [global_batch // world_size] * world_size for _, counts in many[:-1])
        assert max(many[-1][1]) - min(many[-1][1]) <= 1


def test_a_last_batch_smaller_than_the_world_is_topped_up_with_the_first_examples():
    # 25 examples in global batches of 4: the last holds 1 example for 2 ranks
    [*_, (last, counts)] = steps(25, 4, seed=1, epoch=0, world_size=2)
    order = [i for batch in GlobalBatchSampler(25, 4, 1, 0).batches for i in batch]
    assert last == Counter([order[-1], order[0]]) and counts == [1, 1]
    assert GlobalBatchSampler(25, 4, 1, 0, rank=1, world_size=2).global_sizes[-1] == 2


def test_the_order_depends_on_seed_and_epoch_only():
    batches = lambda seed, epoch: GlobalBatchSampler(40, 8, seed, epoch, 1, 2).batches
    assert batches(3, 1) == batches(3, 1)
    assert batches(3, 1) != batches(3, 2) and batches(3, 1) != batches(4, 1)


def test_one_process_keeps_the_batches_of_the_earlier_trainer():
    """Runs from before the sampler (DataLoader(shuffle=True) under tqdm.auto) reproduce."""
    for seed, epoch in ((1, 0), (3, 2)):
        generator = torch.Generator().manual_seed(seed * 1000 + epoch)
        loader = DataLoader(list(range(24)), batch_size=4, shuffle=True, generator=generator)
        earlier = [batch.tolist() for batch in tqdm(loader, total=6, disable=True)]
        assert GlobalBatchSampler(24, 4, seed, epoch).batches == earlier


def test_sampler_refuses_a_rank_outside_the_world():
    with pytest.raises(ValueError, match=r'rank must be in \[0, 2\), got 2'):
        GlobalBatchSampler(10, 4, 1, 0, rank=2, world_size=2)


def test_global_batch_must_divide_by_the_processes():
    assert per_rank_batch(16, 4) == 4
    with pytest.raises(ValueError, match=r"must divide by the 3 processes, got 16 \(e\.g\. 15\)"):
        per_rank_batch(16, 3)


def test_backend_is_nccl_between_gpus_and_gloo_between_cpu_processes():
    assert backend_for(torch.device('cuda', 1)) == 'nccl'
    assert backend_for(torch.device('cpu')) == 'gloo'


def test_without_torchrun_the_run_is_one_process(monkeypatch):
    monkeypatch.delenv('WORLD_SIZE', raising=False)
    single = Distributed.from_environment('cpu')
    assert (single.rank, single.world_size, single.is_main, single.active) == (0, 1, True, False)
    assert single.gather({'a': 1}) == [{'a': 1}]
    monkeypatch.setenv('WORLD_SIZE', '2')
    monkeypatch.setenv('LOCAL_RANK', '0')
    with pytest.raises(ValueError, match="under torchrun give --device cuda, not 'cuda:1'"):
        Distributed.from_environment('cuda:1')


def test_fp16_needs_cuda():
    check_precision('fp16', torch.device('cuda'))
    check_precision('bf16', torch.device('cpu'))
    with pytest.raises(ValueError, match="fp16 needs a CUDA device, got 'cpu'; on a CPU use bf16 or fp32"):
        check_precision('fp16', torch.device('cpu'))
    with pytest.raises(ValueError, match="'train.precision' must be one of fp32, bf16, fp16, got 'fp8'"):
        TrainConfig(precision='fp8')


@pytest.mark.parametrize('argv, message', [
    (['--precision', 'fp16'], 'fp16 needs a CUDA device'),
    (['--batch-size', '3'], "'train.batch_size' is the global batch and must divide by the 2 processes"),
])
def test_command_refuses_in_one_line(argv, message, tiny_encoder, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv('WORLD_SIZE', '2')  # as torchrun sets it; refused before any process group
    with pytest.raises(SystemExit) as exit_:
        main(['train', '--model', 'bert-crf', '--encoder', tiny_encoder, '--out', str(tmp_path), *argv])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_bf16_autocast_trains_with_the_crf_in_float32(tiny_encoder, tmp_path):
    graphs = [build_graph(t) for t in read_conll(demo_split_path('train'))][:8]
    torch.manual_seed(1)
    model = models.build('bert-crf', encoder=tiny_encoder)
    seen = {}
    forward_scores = model.crf._forward_scores
    model.crf._forward_scores = lambda emissions, *rest: (seen.setdefault('crf', emissions.dtype),
                                                          forward_scores(emissions, *rest))[1]

    def record_emissions(module, args, out):
        seen.setdefault('emissions', out.emissions.dtype)
    model.register_forward_hook(record_emissions)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    config = TrainConfig(epochs=1, batch_size=4, precision='bf16', encoder_lr=1e-2, head_lr=1e-2)
    history = Trainer(model, graphs, graphs[:4], config, tmp_path).fit()
    assert seen == {'emissions': torch.bfloat16, 'crf': torch.float32}
    assert torch.isfinite(torch.tensor(history[0]['loss']))
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


# -- real processes -------------------------------------------------------------------------------
EPOCHS = 3


def train_seven_tweets(rank, world_size, init_file, encoder, out):
    """One epoch over 7 demo tweets in global batches of 4 (the last, 3 tweets, splits 1 + 2
    over two ranks); rank 0 saves the final weights to ``out``."""
    import torch.distributed as dist

    if world_size > 1:
        dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=world_size)
    graphs = [build_graph(t) for t in read_conll(demo_split_path('train'))][:7]
    torch.manual_seed(1)
    model = models.build('bert-crf', encoder=encoder, dropout=0.0)
    config = TrainConfig(epochs=1, batch_size=4, encoder_lr=1e-2, head_lr=1e-2, warmup_ratio=0.0)
    distributed = Distributed(rank, world_size, torch.device('cpu'))
    Trainer(model, graphs, graphs[:2], config, f'{out}-run', distributed=distributed).fit()
    if rank == 0:
        torch.save(model.state_dict(), out)
    distributed.close()


class Interrupted(Exception):
    pass


def train_two_epochs(rank, world_size, init_file, encoder, run_dir, stop_at):
    """2 epochs over 8 demo tweets in global batches of 4 (2 steps an epoch), dropout on; with
    ``stop_at``, every rank stops before that training batch, as a killed run would."""
    import torch.distributed as dist

    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=world_size)
    graphs = [build_graph(t) for t in read_conll(demo_split_path('train'))][:8]
    torch.manual_seed(1)
    model = models.build('bert-crf', encoder=encoder)
    if stop_at:
        loss, calls = model.loss, []

        def stopping_loss(batch):
            calls.append(1)
            if len(calls) == stop_at:
                raise Interrupted
            return loss(batch)
        model.loss = stopping_loss
    config = TrainConfig(epochs=2, batch_size=4, encoder_lr=1e-2, head_lr=1e-2, seed=1)
    distributed = Distributed(rank, world_size, torch.device('cpu'))
    trainer = Trainer(model, graphs, graphs[:4], config, run_dir, distributed=distributed)
    try:
        trainer.fit(resume=not stop_at)
    except Interrupted:
        return
    finally:
        distributed.close()
    if rank == 1:  # the other rank's weights: its dropout masks must have been the uninterrupted ones
        torch.save(model.state_dict(), f'{run_dir}/rank1.pt')


@pytest.mark.slow
def test_a_resumed_run_draws_each_ranks_dropout_masks_again(tiny_encoder, tmp_path):
    """last.pt keeps every rank's random state: ranks draw different masks (different batches,
    rank 0 also evaluates), and a resumed rank 1 must go on with its own stream, not rank 0's."""
    import torch.multiprocessing as mp

    full, resumed = tmp_path / 'full', tmp_path / 'resumed'
    mp.spawn(train_two_epochs, args=(2, tmp_path / 'rv1', tiny_encoder, full, None), nprocs=2)
    mp.spawn(train_two_epochs, args=(2, tmp_path / 'rv2', tiny_encoder, resumed, 4), nprocs=2)
    assert torch.load(resumed / 'last.pt', weights_only=True)['epoch'] == 1
    mp.spawn(train_two_epochs, args=(2, tmp_path / 'rv3', tiny_encoder, resumed, None), nprocs=2)
    want, got = (torch.load(run / 'rank1.pt', weights_only=True) for run in (full, resumed))
    assert all(torch.equal(want[k], got[k]) for k in want)


@pytest.mark.slow
def test_uneven_shares_step_with_the_gradient_of_the_global_batch(dropout_free_encoder, tmp_path):
    """DDP averages the ranks' gradients; a rank with 1 of the 3 tweets of a step must count
    for a third, not a half, for the 2-process step to equal the 1-process one."""
    import torch.multiprocessing as mp

    train_seven_tweets(0, 1, None, dropout_free_encoder, tmp_path / 'one.pt')
    mp.spawn(train_seven_tweets, args=(2, tmp_path / 'rendezvous', dropout_free_encoder, tmp_path / 'two.pt'),
             nprocs=2)
    one, two = (torch.load(tmp_path / f'{n}.pt', weights_only=True) for n in ('one', 'two'))
    assert max(float((one[k] - two[k]).abs().max()) for k in one) < 1e-5


@pytest.fixture(scope='module')
def dropout_free_encoder(tmp_path_factory):
    """The tiny random BERT without dropout: ranks draw their own dropout masks, so only a
    dropout-free model can be held to the 1-process run's numbers."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path = tmp_path_factory.mktemp('tiny-bert-no-dropout')
    tokenizer = BertTokenizerFast(vocab=str(ROOT.parent / 'shared' / 'models' / 'all-MiniLM-L6-v2' /
                                            'vocab.txt'), do_lower_case=True)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def run_argv(encoder, graph_cache, out):
    # 24 training tweets, global batches of 4: 6 steps an epoch, 2 tweets per rank and step
    return ['--model', 'bert-crf', '--encoder', encoder, '--epochs', str(EPOCHS), '--batch-size', '4',
            '--seed', '3', '--cache-dir', str(graph_cache), '--set', 'train.encoder_lr=0.01',
            '--set', 'train.head_lr=0.01', '--set', 'model.dropout=0', '--out', str(out)]


@pytest.fixture(scope='module')
def runs(dropout_free_encoder, tmp_path_factory):
    """The same run in 1 process and in 2 (started together: the machine has two cores)."""
    tmp = tmp_path_factory.mktemp('ddp-runs')
    cache = tmp / 'cache'
    for split in ('train', 'dev', 'test'):  # built once here, not raced for by the runs
        load_dataset('demo', split, cache_dir=cache)
    folders = {n: tmp / f'{n}-process' for n in (1, 2)}
    started = {n: launch(tmp, run_argv(dropout_free_encoder, cache, folders[n]), n) for n in (1, 2)}
    logs = {n: finish(process) for n, (process, _) in started.items()}
    return {'cache': cache, 'folders': folders, 'logs': logs,
            'metrics': {n: json.loads((folders[n] / 'metrics.json').read_text()) for n in (1, 2)}}


@pytest.mark.slow
def test_two_processes_end_within_half_a_point_of_one(runs):
    one, two = runs['metrics'][1], runs['metrics'][2]
    assert (one['processes'], two['processes']) == (1, 2)
    assert 'batches of 4 tweets: 2 per process x 2 process(es) (DDP)' in runs['logs'][2]
    assert not (runs['folders'][2] / 'FAILED').exists()
    for split in ('dev', 'test'):
        assert abs(one[split]['f1'] - two[split]['f1']) <= 0.005, split
    assert two['test']['f1'] > 0  # the check compares runs that found entities
    # The same examples per step and the gradient of the global batch's mean: the same losses
    for a, b in zip(one['history'], two['history'], strict=True):
        assert b['loss'] == pytest.approx(a['loss'], rel=1e-5)
    assert two['history'][-1]['loss'] < 0.5 * two['history'][0]['loss']
    # rank 0 alone wrote the run folder: one log, no second rank's lines in it
    assert '[rank 1]' not in (runs['folders'][2] / 'log.txt').read_text()


@pytest.mark.slow
def test_two_process_checkpoint_loads_in_one_process(runs):
    one, two = (torch.load(runs['folders'][n] / 'best.pt', weights_only=True)['state_dict'] for n in (1, 2))
    assert not [k for k in two if k.startswith(('module.', 'model.'))]  # the unwrapped model's keys
    assert max(float((one[k].float() - two[k].float()).abs().max()) for k in one) < 1e-3
    model = models.load(runs['folders'][2] / 'best.pt')
    test = [model.graph_transform()(g) for g in load_dataset('demo', 'test', cache_dir=runs['cache'])]
    scores = model.evaluate(DataLoader(test, batch_size=64))
    assert scores['f1'] == pytest.approx(runs['metrics'][2]['test']['f1'])


@pytest.mark.slow
def test_two_process_run_killed_and_resumed_finishes(runs, dropout_free_encoder, tmp_path):
    killed = tmp_path / 'killed'
    argv = run_argv(dropout_free_encoder, runs['cache'], killed)
    # every rank stops before its 9th batch (epoch 2 has begun) and waits to be killed
    kill_when_paused(*launch(tmp_path, argv, 2, pause='loss:9'))
    assert torch.load(killed / 'last.pt', weights_only=True)['epoch'] == 1
    assert not (killed / 'metrics.json').exists()

    log = finish(launch(tmp_path, [*argv, '--resume'], 2)[0])
    assert 'Resumed from' in log and 'after epoch 1' in log
    got, want = (json.loads((run / 'metrics.json').read_text()) for run in (killed, runs['folders'][2]))
    assert got['test'] == want['test'] and got['dev'] == want['dev']
    drop_timing = lambda history: [{k: v for k, v in h.items() if 'second' not in k} for h in history]
    assert drop_timing(got['history']) == drop_timing(want['history'])


#: The two methods whose losses take in-batch negatives, as train_on_demo builds them. MAF: 2k = 4, so
#: a whole step holds about 6 image tweets and swaps 4, where a rank's share of 4 tweets could never
#: swap. GMF: CSA off, since its batch norm normalises each rank's share on its own, which no gather
#: changes.
CONTRASTING = {'maf': {'negatives': 4, 'dropout': 0.0, 'attention_dropout': 0.0},
               'gmf': {'reduction': 2, 'csa': False, 'dropout': 0.0}}


def train_on_demo(rank, world_size, init_file, encoder, name, out):
    """``name`` (a key of :data:`CONTRASTING`), 2 epochs over 12 demo tweets (9 with fake image
    features) in global batches of 8. Rank 0 saves the history and the final weights."""
    import torch.distributed as dist
    from conftest import fake_features

    if world_size > 1:
        dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=world_size)
    tweets = read_conll(demo_split_path('train'))[:12]
    graphs = [build_graph(t, fake_features(0, 8, seed=i)) if i % 4 != 3
              else build_graph(t, None, widths=VisualWidths.uniform(8)) for i, t in enumerate(tweets)]
    torch.manual_seed(1)
    model = models.build(name, encoder=encoder, visual_dim=8, **CONTRASTING[name])
    graphs = [model.graph_transform()(g) for g in graphs]
    config = TrainConfig(epochs=2, batch_size=8, encoder_lr=1e-3, head_lr=1e-3, warmup_ratio=0.0)
    distributed = Distributed(rank, world_size, torch.device('cpu'))
    history = Trainer(model, graphs, graphs[:2], config, f'{out}-run', distributed=distributed).fit()
    if rank == 0:
        torch.save({'history': history, 'weights': model.state_dict()}, out)
    distributed.close()


def one_and_two_processes(name, encoder, tmp_path):
    """The histories and final weights of :func:`train_on_demo` in 1 process and in 2."""
    import torch.multiprocessing as mp

    train_on_demo(0, 1, None, encoder, name, tmp_path / 'one.pt')
    mp.spawn(train_on_demo, args=(2, tmp_path / 'rendezvous', encoder, name, tmp_path / 'two.pt'), nprocs=2)
    return tuple(torch.load(tmp_path / f'{n}.pt', weights_only=False) for n in ('one', 'two'))


@pytest.mark.slow
def test_maf_swaps_and_contrasts_over_the_global_batch(dropout_free_encoder, tmp_path):
    """The CM negatives and the CA InfoNCE's in-batch negatives are the global batch's: 2
    processes swap as many tweets per epoch as 1, with the same losses and the same step."""
    one, two = one_and_two_processes('maf', dropout_free_encoder, tmp_path)
    assert [h['negatives'] for h in two['history']] == [h['negatives'] for h in one['history']]
    assert all(h['negatives'] == 4 for h in one['history'])  # the 8-tweet step swaps 2k, the 4-tweet one none
    for a, b in zip(one['history'], two['history'], strict=True):
        for key in ('loss', 'ca', 'cm'):
            assert b[key] == pytest.approx(a[key], rel=1e-4), key
    assert max(float((one['weights'][k].float() - two['weights'][k].float()).abs().max())
               for k in one['weights']) < 1e-5


@pytest.mark.slow
def test_gmf_contrasts_over_the_global_batch(dropout_free_encoder, tmp_path):
    """CM's negatives are the global batch's: 2 processes count as many (anchor, negative) pairs
    per epoch as 1 (a rank's own share would give fewer), with the same losses and the same step."""
    one, two = one_and_two_processes('gmf', dropout_free_encoder, tmp_path)
    # Steps of 8 and 4 tweets, 6 and 3 with an image: 6 x 5 + 3 x 2 pairs an epoch.
    assert [h['cm_negatives'] for h in one['history']] == [36, 36]
    assert [h['cm_negatives'] for h in two['history']] == [h['cm_negatives'] for h in one['history']]
    for a, b in zip(one['history'], two['history'], strict=True):
        for key in ('loss', 'nll', 'cm'):
            assert b[key] == pytest.approx(a[key], rel=1e-4), key
    assert max(float((one['weights'][k].float() - two['weights'][k].float()).abs().max())
               for k in one['weights']) < 1e-5


def gmf_shares(rank, world_size, init_file, encoder, cm_text, csa, out):
    """GMF's training objective and its step on 5 tweets: in 1 process, or as 2 ranks of which the
    second holds only the 2 tweets without an image (its text pass has nothing to encode and, with
    ``csa``, it has no map for CSA's batch norms, yet it must take part in the gather and in their
    sums). Each rank's gradient is weighed by its share and averaged, as the trainer and DDP do;
    rank 0 saves CM's loss, the count, the averaged gradients and CSA's running statistics."""
    import torch.distributed as dist
    from conftest import fake_features

    if world_size > 1:
        # A rank that misses a collective fails the test in a minute, not in gloo's 30.
        dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=world_size,
                                timeout=timedelta(seconds=60))
    tweets = read_conll(demo_split_path('train'))[:5]
    graphs = [build_graph(t, fake_features(0, 8, seed=i)) for i, t in enumerate(tweets[:3])]
    graphs += [build_graph(t, None, widths=VisualWidths.uniform(8)) for t in tweets[3:]]
    torch.manual_seed(1)
    model = models.build('gmf', encoder=encoder, visual_dim=8, reduction=2, csa=csa, dropout=0.0,
                         cm_text=cm_text)
    model.fit_feature_statistics(graphs)
    graphs = [model.graph_transform()(g) for g in graphs]
    mine = graphs if world_size == 1 else (graphs[:3], graphs[3:])[rank]
    model.train()
    model.batch_group = dist.group.WORLD if world_size > 1 else None
    loss, logs = model.loss(Batch.from_data_list(mine))
    (loss * world_size * len(mine) / len(graphs)).backward()
    grads = {n: (p.grad if p.grad is not None else torch.zeros_like(p)) / world_size
             for n, p in model.named_parameters()}
    if world_size > 1:
        for g in grads.values():
            dist.all_reduce(g)
    negatives = torch.tensor(logs['cm_negatives'])
    if world_size > 1:
        dist.all_reduce(negatives)
    if rank == 0:
        norms = {k: v for k, v in model.state_dict().items() if k.startswith('csa.') and 'norm' in k}
        torch.save({'cm': logs['cm'], 'negatives': int(negatives), 'grads': grads, 'norms': norms}, out)
    if world_size > 1:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize('cm_text, csa', [('prefix-free', False), ('guided', False), ('prefix-free', True),
                                          ('guided', True)])
def test_gmf_with_a_rank_without_images(dropout_free_encoder, tmp_path, cm_text, csa):
    """The same CM loss, negatives and step as 1 process, and with CSA, the same running
    statistics: its batch norms take the global batch's (the second rank joins with no rows)."""
    import torch.multiprocessing as mp

    gmf_shares(0, 1, None, dropout_free_encoder, cm_text, csa, tmp_path / 'one.pt')
    mp.spawn(gmf_shares, nprocs=2,
             args=(2, tmp_path / 'rendezvous', dropout_free_encoder, cm_text, csa, tmp_path / 'two.pt'))
    one, two = (torch.load(tmp_path / f'{n}.pt', weights_only=False) for n in ('one', 'two'))
    assert one['cm'] > 0 and two['cm'] == pytest.approx(one['cm'], rel=1e-5)
    assert one['negatives'] == two['negatives'] == 3 * 2
    assert any(g.abs().sum() > 0 for n, g in one['grads'].items() if n.startswith('encoder'))
    assert any(g.abs().sum() > 0 for n, g in one['grads'].items() if n.startswith('csa')) == csa
    for name, grad in one['grads'].items():
        torch.testing.assert_close(two['grads'][name], grad, atol=1e-6, rtol=1e-4, msg=name)
    assert len(one['norms']) == (4 * 5 * 5 if csa else 0)   # 4 levels x 5 norms x 5 buffers
    for name, value in one['norms'].items():
        torch.testing.assert_close(two['norms'][name], value, atol=1e-6, rtol=1e-5, msg=name)
