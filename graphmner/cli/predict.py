"""Tag new tweets with a trained model: one tweet, or a file of tweets.

Examples:
    graphmner predict runs/umgf-demo-seed1/best.pt --text "Barack Obama visits Paris with the Lakers"
    graphmner predict runs/umgf-demo-seed1/best.pt --text "Rob after a fish dinner" --image dog.jpg
    graphmner predict best.pt --input tweets.txt --input-format text --output tagged.jsonl
    graphmner predict best.pt --input test.txt --input-format conll --image-root images/ \\
        --output tagged.txt --output-format conll
    graphmner predict best.pt --input tweets.txt --output tagged.html

Input formats: conll (the IMGID: CoNLL format; labels, if any, are ignored), jsonl (one JSON
object a line with "text" or "words", and optionally "image"), text (one tweet a line).
Output formats: jsonl (words, labels, entities with text, type, start, end (exclusive) and
confidence, image_used, notes), conll (IMGID: blocks, one word and its label a line) and html
(a page of the entities drawn by spaCy's displaCy with their confidence; offline, no script).
The output file is written whole or not at all (a temporary file, then a rename).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .common import UsageError, run_guarded

INPUT_FORMATS = ('conll', 'jsonl', 'text')
OUTPUT_FORMATS = ('jsonl', 'conll', 'html')


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument('checkpoint', help="a trained model: a run's best.pt (e.g. runs/umgf-demo-seed1/best.pt) "
                   'or a model folder (graphmner export-model)')
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument('--text', help='one tweet to tag (e.g. --text "Barack Obama visits Paris")')
    source.add_argument('--input', help='a file of tweets to tag (e.g. --input tweets.jsonl)')
    p.add_argument('--image', help='the photo of the --text tweet (e.g. --image photo.jpg)')
    p.add_argument('--input-format', choices=INPUT_FORMATS,
                   help='format of --input (default: from its extension: .jsonl, .txt as conll if it has '
                   'IMGID: lines, else text)')
    p.add_argument('--image-root', help='folder of the photos of --input tweets: <image_id>.jpg for conll, '
                   'relative "image" paths for jsonl (e.g. --image-root images/)')
    p.add_argument('--output', help='where to write the tagged --input tweets (e.g. --output tagged.jsonl)')
    p.add_argument('--output-format', choices=OUTPUT_FORMATS,
                   help='format of --output (default: from its extension: .jsonl, .html or conll)')
    p.add_argument('--captions', help="caption file for ITA's caption words (default: the training one)")
    p.add_argument('--cache-dir', help='feature cache folder (default: graphs/cache)')
    p.add_argument('--batch-size', type=int, default=32, help='tweets per forward pass (default: 32)')
    p.add_argument('--device', default='cpu', help="'cpu', 'cuda' or 'cuda:N'")
    p.add_argument('--verbose', action='store_true', help="show third-party libraries' warnings")


def run(args: argparse.Namespace):
    return run_guarded('graphmner predict', lambda: predict(args))


def read_input(path: Path, fmt: str, image_root: str | None) -> tuple[list, list, list[str]]:
    """(tweets as raw text or word lists, image paths or None, image ids) from ``path``."""
    from ..data.conll import ConllFormatError, read_conll
    from ..data.paths import image_path

    if fmt == 'conll':
        try:
            tweets = read_conll(path)
        except ConllFormatError as error:
            raise UsageError(f"--input '{path}' is not a valid IMGID: CoNLL file: {error}") from None
        images = []
        for t in tweets:
            try:
                images.append(image_path(image_root, t.image_id) if image_root else None)
            except ValueError:
                images.append(None)  # an id that would leave the image folder is never followed
        return [t.words for t in tweets], images, [t.image_id for t in tweets]
    try:
        lines = path.read_text(encoding='utf-8').splitlines()
    except UnicodeDecodeError:
        raise UsageError(f"--input '{path}' is not UTF-8 text") from None
    if fmt == 'text':
        texts = [line for line in lines if line.strip()]
        return texts, [None] * len(texts), [f'tweet{i}' for i in range(len(texts))]
    tweets, images, ids = [], [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise UsageError(f"--input '{path}' line {number} is not JSON: {error.msg}") from None
        if not isinstance(record, dict) or not (isinstance(record.get('text'), str) or (
                isinstance(record.get('words'), list) and all(isinstance(w, str) for w in record['words']))):
            raise UsageError(f"--input '{path}' line {number} needs \"text\" (a string) or \"words\" "
                             '(a list of strings)')
        tweets.append(record['words'] if 'words' in record else record['text'])
        image = record.get('image')
        if image is not None and image_root and not Path(image).is_absolute():
            image = str(Path(image_root) / image)
        images.append(image)
        ids.append(str(record.get('id', f'tweet{len(ids)}')))
    return tweets, images, ids


def write_output(path: Path, fmt: str, predictions, ids: list[str]) -> None:
    from ..data.conll import Tweet, write_conll
    from ..io import atomic_write

    if fmt == 'jsonl':
        text = ''.join(json.dumps(p.to_dict(), ensure_ascii=False) + '\n' for p in predictions)
        atomic_write(path, lambda f: f.write(text.encode('utf-8')))
        return
    if fmt == 'html':
        from ..render import render

        text = render(predictions, titles=ids, page=True)
        atomic_write(path, lambda f: f.write(text.encode('utf-8')))
        return
    tweets = [Tweet(i, p.words, p.labels) for i, p in zip(ids, predictions)]
    tmp = path.with_name(f'.{path.name}.conll.tmp')
    try:
        write_conll(tweets, tmp)
        data = tmp.read_bytes()
    finally:
        tmp.unlink(missing_ok=True)
    atomic_write(path, lambda f: f.write(data))


def predict(args: argparse.Namespace):
    from ..predict import PredictionError, Tagger
    if args.batch_size < 1:
        raise UsageError(f'--batch-size must be at least 1, got {args.batch_size}')
    if args.text is not None and (args.output or args.input_format or args.output_format):
        raise UsageError('--output, --input-format and --output-format go with --input, not --text')
    if args.image is not None and args.text is None:
        raise UsageError('--image goes with --text; for --input give "image" per line or --image-root')
    source = None
    if args.input is not None:
        source = Path(args.input)
        if not source.is_file():
            raise UsageError(f"--input '{source}' does not exist or is not a file")
        if not args.output:
            raise UsageError('--input needs --output FILE')
        fmt = args.input_format or _input_format(source)
        out_fmt = args.output_format or {'.jsonl': 'jsonl', '.html': 'html'}.get(Path(args.output).suffix,
                                                                                 'conll')
        if not Path(args.output).resolve().parent.is_dir():
            raise UsageError(f"--output '{args.output}': its folder does not exist")
    if source is not None:  # a bad input file is found before the model loads
        tweets, images, ids = read_input(source, fmt, args.image_root)
    if args.image is not None:
        check_image(args.image)
    try:
        tagger = Tagger.load(args.checkpoint, cache_dir=args.cache_dir, device=args.device,
                             batch_size=args.batch_size, captions=args.captions)
        if source is None:
            prediction = tagger.predict(args.text, image=args.image)
            print(prediction)
            return prediction
        predictions = tagger.predict(tweets, images=images, progress=sys.stderr.isatty())
    except PredictionError as error:
        raise UsageError(str(error)) from None
    write_output(Path(args.output), out_fmt, predictions, ids)
    entities = sum(len(p.entities) for p in predictions)
    unusable = sum(any(note.startswith('image unusable') for note in p.notes) for p in predictions)
    flagged = f'; {unusable} with an unusable image, tagged from the text: see their notes' * bool(unusable)
    print(f"tagged {len(predictions)} tweet{'s' * (len(predictions) != 1)} ({entities} "
          f"entit{'ies' if entities != 1 else 'y'}{flagged}) -> {args.output}")
    return predictions


def check_image(path: str) -> None:
    """The one photo given with --text must be usable: a path that is missing,
    a folder or a broken file is almost always a typo, so it is an error, not a
    silent text-only tag (a file of tweets flags such images per tweet)."""
    from ..data.images import load_image

    result = load_image(path)
    if result.ok:
        return
    if Path(path).is_dir():
        reason = 'is a folder, not an image file'
    elif result.problem == 'missing':
        reason = 'does not exist'
    else:
        reason = f'cannot be used ({result.problem}: {result.detail})'
    raise UsageError(f"--image '{path}' {reason}; give the tweet's photo, or leave --image out to tag "
                     'from the text alone')


def _input_format(path: Path) -> str:
    if path.suffix == '.jsonl':
        return 'jsonl'
    with open(path, encoding='utf-8', errors='replace') as f:
        head = f.read(4096)
    return 'conll' if 'IMGID:' in head else 'text'
