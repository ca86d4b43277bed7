"""``graphmner train --graphs-on-disk``: the splits streamed from graph files train
exactly as the splits held in memory."""
import json

from graphmner.cli import main
from graphmner.graph.datasets import StreamedTweetGraphs, TweetGraphs
from graphmner.train import Trainer


def test_graphs_on_disk_train_as_the_graphs_in_memory(tiny_encoder, tmp_path, monkeypatch):
    given = []
    init = Trainer.__init__

    def recording_init(self, model, train, dev, *args, **kwargs):
        given.append((type(train), type(dev)))
        init(self, model, train, dev, *args, **kwargs)
    monkeypatch.setattr(Trainer, '__init__', recording_init)
    cache = tmp_path / 'cache'
    argv = ['train', '--model', 'umgf', '--encoder', tiny_encoder, '--epochs', '1', '--batch-size', '8',
            '--cache-dir', str(cache)]
    main([*argv, '--out', str(tmp_path / 'memory')])
    main([*argv, '--graphs-on-disk', '--out', str(tmp_path / 'disk')])
    # the datasets themselves, transformed on access: no split copied into a list
    assert given == [(TweetGraphs, TweetGraphs), (StreamedTweetGraphs, StreamedTweetGraphs)]
    memory, disk = (json.loads((tmp_path / run / 'metrics.json').read_text()) for run in ('memory', 'disk'))
    assert disk['history'][0]['loss'] == memory['history'][0]['loss']
    assert disk['dev'] == memory['dev'] and disk['test'] == memory['test']
    files = sorted(p.name.split('.', 1)[1] for p in (cache / 'demo' / 'processed').glob('*-*'))
    assert files == ['graphs'] * 3 + ['graphs.json'] * 3 + ['json'] * 3 + ['pt'] * 3  # each split, each kind
