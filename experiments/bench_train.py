"""Training throughput of graphmner's trainer against a bare loop, side by side.

    python experiments/bench_train.py --data-root ../shared/data --encoder ../shared/models/all-MiniLM-L6-v2
    python experiments/bench_train.py --model umgf ...   # also UMGF against bert-crf

The bare loop is what a person would write by hand: the same encoder
(``AutoModel``), the same batches in the same order, already tokenised outside
the timed region, first-subword states -> linear -> cross-entropy -> AdamW. It
runs twice: with PyTorch's default AdamW, and with the fused AdamW the trainer
uses (the stricter floor, which the ratio is taken against). The trainer runs
the full bert-crf (CRF NLL, collation of graph batches, tokenisation,
scheduler, clipping). Rounds alternate between the contenders so
that machine load drifts hit both alike; the ratio is tweets/s over tweets/s.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graphmner.cli import quiet_third_parties  # noqa: E402

quiet_third_parties()  # before torch_geometric's import warns about torch.jit

from graphmner import models  # noqa: E402
from graphmner.graph import load_dataset, visual_width  # noqa: E402
from graphmner.train import TrainConfig, Trainer  # noqa: E402
from graphmner.train.trainer import shuffled_loader  # noqa: E402


def trainer_round(name: str, encoder: str, graphs, config: TrainConfig) -> float:
    torch.manual_seed(config.seed)
    fields = {f.name for f in dataclasses.fields(models.model_class(name).config_class)}
    visual = {'visual_dim': visual_width(graphs)} if 'visual_dim' in fields and visual_width(graphs) else {}
    return train_one_epoch(models.build(name, encoder=encoder, **visual), graphs, config).tweets_per_second


def train_one_epoch(model: models.MNERModel, graphs, config: TrainConfig) -> Trainer:
    """``model`` trained by graphmner's :class:`Trainer` for one epoch over ``graphs`` (its graph
    transform applied to copies), in a throwaway run folder."""
    transform = model.graph_transform()
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(model, [transform(g.clone()) for g in graphs], [], config, run_dir)
        trainer.train_epoch(0)
    return trainer


def bare_round(encoder: str, graphs, config: TrainConfig, fused: bool) -> float:
    from transformers import AutoModel

    torch.manual_seed(config.seed)
    helper = models.build('bert-crf', encoder=encoder).encoder  # tokeniser only
    model = AutoModel.from_pretrained(encoder, add_pooling_layer=False)
    head = torch.nn.Linear(model.config.hidden_size, 9)
    optimizer = torch.optim.AdamW(list(model.parameters()) + list(head.parameters()), lr=config.encoder_lr,
                                  fused=fused)
    batches = []  # the same batches as the trainer's first epoch, tokenised up front
    for batch in shuffled_loader(graphs, config.batch_size, config.seed, epoch=0):
        enc = helper.tokenize(batch.words)
        batches.append((enc, batch['word'].y))
    model.train()
    seen, start = 0, time.perf_counter()
    for enc, y in batches:
        hidden = model(input_ids=enc.input_ids, attention_mask=enc.attention_mask).last_hidden_state
        states = hidden.gather(1, enc.word_index.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
        loss = torch.nn.functional.cross_entropy(head(states[enc.word_mask]), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += enc.word_mask.shape[0]
    return seen / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', default='bert-crf', choices=models.available())
    p.add_argument('--dataset', default='twitter2017')
    p.add_argument('--data-root', default=str(ROOT.parent / 'shared' / 'data'))
    p.add_argument('--encoder', default=str(ROOT.parent / 'shared' / 'models' / 'all-MiniLM-L6-v2'))
    p.add_argument('--batches', type=int, default=20, help='batches per round')
    p.add_argument('--batch-size', type=int, default=16)
    p.add_argument('--rounds', type=int, default=3)
    args = p.parse_args()

    graphs = list(load_dataset(args.dataset, 'train', data_root=args.data_root))
    graphs = graphs[:args.batches * args.batch_size]
    config = TrainConfig(epochs=1, batch_size=args.batch_size, seed=1)
    contenders = {'bare loop': lambda: bare_round(args.encoder, graphs, config, fused=False),
                  'bare loop, fused': lambda: bare_round(args.encoder, graphs, config, fused=True),
                  'trainer bert-crf': lambda: trainer_round('bert-crf', args.encoder, graphs, config)}
    if args.model != 'bert-crf':
        contenders[f'trainer {args.model}'] = lambda: trainer_round(args.model, args.encoder, graphs, config)
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    for r in range(args.rounds):
        for name, run in contenders.items():
            rates[name].append(run())
            print(f'round {r + 1}  {name:<18} {rates[name][-1]:7.2f} tweets/s', flush=True)
    median = {name: statistics.median(values) for name, values in rates.items()}
    print(f'\n{len(graphs)} tweets x {args.rounds} rounds, batch {args.batch_size}, '
          f'{torch.get_num_threads()} threads')
    for name, value in median.items():
        print(f'{name:<20} {value:7.2f} tweets/s (median)')
    print(f"ratio trainer bert-crf / bare loop with fused AdamW: "
          f"{median['trainer bert-crf'] / median['bare loop, fused']:.2f}x")
    print(f"ratio trainer bert-crf / bare loop with default AdamW: "
          f"{median['trainer bert-crf'] / median['bare loop']:.2f}x")
    if args.model != 'bert-crf':
        print(f"ratio trainer {args.model} / trainer bert-crf: "
              f"{median[f'trainer {args.model}'] / median['trainer bert-crf']:.2f}x")


if __name__ == '__main__':
    main()
