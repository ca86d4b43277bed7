"""Draw what a trained model read to tag one tweet: the photo's attended regions and objects, the entities.

Examples:
    graphmner explain runs/maf-demo-seed1/best.pt --text "Rob after a fish dinner" --image dog.jpg \\
        --output why.png --output why.html

The picture: the photo with the attended regions (or pyramid cells) as a heatmap and the objects as
labelled boxes, the words coloured by entity type, each entity's strongest evidence (attention
weights and gate values), MAF's matched probability and GMF's level gates. Formats by suffix:
.png (matplotlib) or .html (one self-contained page, nothing loaded from the network).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .common import UsageError, run_guarded

FORMATS = ('.png', '.html')


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument('checkpoint', help="a trained model: a run's best.pt (e.g. runs/maf-demo-seed1/best.pt)")
    p.add_argument('--text', required=True, help='the tweet (e.g. --text "Barack Obama visits Paris")')
    p.add_argument('--image', help='its photo (e.g. --image photo.jpg)')
    p.add_argument('--output', action='append', required=True,
                   help='where to draw it, .png or .html; give it twice for both (e.g. --output why.png)')
    p.add_argument('--captions', help="caption file for ITA's caption words (default: the training one)")
    p.add_argument('--cache-dir', help='feature cache folder (default: graphs/cache)')
    p.add_argument('--device', default='cpu', help="'cpu', 'cuda' or 'cuda:N'")
    p.add_argument('--verbose', action='store_true', help="show third-party libraries' warnings")


def run(args: argparse.Namespace):
    return run_guarded('graphmner explain', lambda: explain(args))


def explain(args: argparse.Namespace):
    outputs = [Path(o) for o in args.output]
    for out in outputs:
        if out.suffix.lower() not in FORMATS:
            raise UsageError(f"--output '{out}': the suffix must be one of {', '.join(FORMATS)}")
        if not out.resolve().parent.is_dir():
            raise UsageError(f"--output '{out}': its folder does not exist")
    if args.image is not None and not Path(args.image).is_file():
        raise UsageError(f"--image '{args.image}' does not exist or is not a file")
    from ..explain import draw, summary, to_html
    from ..io import atomic_write_text
    from ..predict import PredictionError, Tagger

    try:
        tagger = Tagger.load(args.checkpoint, cache_dir=args.cache_dir, device=args.device,
                             captions=args.captions)
        prediction = tagger.predict(args.text, image=args.image, explain=True)
    except PredictionError as error:
        raise UsageError(str(error)) from None
    print(prediction)
    print('\n'.join(f'  {line}' for line in summary(prediction)))
    for out in outputs:
        if out.suffix.lower() == '.png':
            draw(prediction, out)
        else:
            atomic_write_text(out, to_html(prediction))
        print(f'-> {out}')
    return prediction
