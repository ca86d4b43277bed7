"""Convert a run's checkpoint into a model folder (config.json, model.safetensors, the encoder's
tokenizer and config, a README.md model card).

Examples:
    graphmner export-model runs/umgf-demo-seed1/best.pt models/umgf-demo
    graphmner predict models/umgf-demo --text "Barack Obama visits Paris with the Lakers"

The folder needs no other file (its text encoder included) and loads with
Tagger.from_pretrained(DIR). The model card takes its scores from the run folder's
metrics.json when the checkpoint sits in one. DIR is a new or empty folder, or an earlier
model folder (its model files are replaced).
"""
from __future__ import annotations

import argparse

from .common import run_guarded


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument('checkpoint', help="a run's checkpoint (e.g. runs/umgf-demo-seed1/best.pt)")
    p.add_argument('directory', metavar='DIR', help='the model folder to write (e.g. models/umgf-demo)')
    p.add_argument('--verbose', action='store_true', help="show third-party libraries' warnings")


def run(args: argparse.Namespace):
    return run_guarded('graphmner export-model', lambda: export_model(args))


def export_model(args: argparse.Namespace):
    from ..models import export_checkpoint

    directory = export_checkpoint(args.checkpoint, args.directory)
    print(f'wrote the model folder {directory} (config.json, model.safetensors, encoder/, README.md)')
    return directory
