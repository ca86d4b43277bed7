r"""Viterbi decoding speed: :class:`graphmner.nn.crf.CRF` against pytorch-crf.

Both decoders get the same random emissions, prefix masks (lengths drawn
between 5 and ``--length``) and parameters; the script first checks that they
return the same paths, then times them under :func:`torch.no_grad`, warm-up
first, alternating the two so that both see the same machine load, and prints
the medians and their ratio.

    python experiments/bench_crf.py --batch-size 32 --length 40 --tags 9
"""
import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch
import torchcrf

from graphmner.nn.crf import CRF


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--length', type=int, default=40)
    parser.add_argument('--tags', type=int, default=9)
    parser.add_argument('--repeats', type=int, default=100)
    parser.add_argument('--warmup', type=int, default=10)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    ours = CRF(args.tags).to(device)
    reference = torchcrf.CRF(args.tags, batch_first=True).to(device)
    reference.load_state_dict(ours.state_dict())

    emissions = torch.randn(args.batch_size, args.length, args.tags,
                            device=device)
    lengths = torch.randint(min(5, args.length), args.length + 1,
                            (args.batch_size, ), device=device)
    mask = torch.arange(args.length, device=device) < lengths.unsqueeze(1)

    def sync() -> None:
        if device.type == 'cuda':
            torch.cuda.synchronize()

    def run_ours() -> torch.Tensor:
        tags = ours.decode(emissions, mask)
        sync()
        return tags

    def run_reference() -> list[list[int]]:
        paths = reference.decode(emissions, mask)
        sync()
        return paths

    with torch.no_grad():
        tags = run_ours().tolist()
        expected = run_reference()
        for i, (row, path) in enumerate(zip(tags, expected)):
            if row[:len(path)] != path:
                raise AssertionError(f"Sequence {i}: decoded paths differ")
        print(f"paths equal on {args.batch_size} sequences "
              f"(lengths {lengths.min().item()}-{lengths.max().item()})")

        runs: list[Callable] = [run_ours, run_reference]
        for _ in range(args.warmup):
            for run in runs:
                run()
        times: list[list[float]] = [[], []]
        for _ in range(args.repeats):
            for run, spent in zip(runs, times):
                begin = time.perf_counter()
                run()
                spent.append(time.perf_counter() - begin)

    ours_ms, reference_ms = (1e3 * statistics.median(t) for t in times)
    load = ', '.join(f'{value:.2f}' for value in os.getloadavg())
    print(f"device: {device}, threads: {torch.get_num_threads()}, "
          f"B={args.batch_size} T={args.length} C={args.tags}, "
          f"median of {args.repeats}, load average {load}")
    print(f"graphmner CRF.decode:   {ours_ms:8.3f} ms")
    print(f"pytorch-crf CRF.decode: {reference_ms:8.3f} ms")
    print(f"speed-up: {reference_ms / ours_ms:.1f}x")


if __name__ == '__main__':
    main()
