"""RapidOCR (graphmner.features.ocr) against Tesseract on photos with printed text.

    python experiments/compare_ocr.py            # needs pytesseract and tesseract-ocr for Tesseract

Twelve scikit-image photos get a caption, a sign or a banner rendered in a DejaVu
font (matplotlib's copies), four are left without text. For each engine: character
accuracy (1 - edit distance / length of the true text, words joined in reading
order; below 0 when the engine reads junk), word recall and precision (multiset
match), junk words on the photos without text, and seconds per photo. Both
engines run on one thread. The figures in graphmner/features/ocr.py come from
this script.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from experiments.printed_text import print_lines  # noqa: E402
from graphmner.data.demo import demo_image_root  # noqa: E402
from graphmner.features.ocr import OcrConfig, TextReader  # noqa: E402

# (photo, lines, font, size, style, where)
PHOTOS_WITH_TEXT = [
    ('astronaut', ['NASA Johnson Space Center'], 'DejaVuSans-Bold.ttf', 30, 'meme', 'top'),
    ('coffee', ['Pikolo Espresso Bar'], 'DejaVuSans-Bold.ttf', 40, 'meme', 'bottom'),
    ('rocket', ['SpaceX launches DSCOVR', 'from Cape Canaveral'], 'DejaVuSans-Bold.ttf', 34, 'meme', 'top'),
    ('chelsea', ['Meet Rob from Amsterdam'], 'DejaVuSans.ttf', 30, 'band', 'bottom'),
    ('brick', ['Arctic Monkeys', 'World Tour 2026'], 'DejaVuSerif-Bold.ttf', 44, 'band', 'top'),
    ('camera', ['Photo by Lav Varshney'], 'DejaVuSans.ttf', 26, 'band', 'bottom'),
    ('hubble_deep_field', ['Hubble eXtreme Deep Field'], 'DejaVuSans-Bold.ttf', 44, 'meme', 'top'),
    ('grass', ['Wimbledon Centre Court'], 'DejaVuSansMono-Bold.ttf', 36, 'meme', 'bottom'),
    ('gravel', ['Road closed near Seattle'], 'DejaVuSerif.ttf', 32, 'band', 'top'),
    ('clock_motion', ['Big Ben London'], 'DejaVuSans-Bold.ttf', 34, 'meme', 'bottom'),
    ('retina', ['Moorfields Eye Hospital'], 'DejaVuSans-Bold.ttf', 80, 'band', 'bottom'),
    ('astronaut', ['Eileen Collins', 'STS-93 Columbia'], 'DejaVuSansMono-Bold.ttf', 28, 'band', 'bottom'),
]
PHOTOS_WITHOUT_TEXT = ['coffee', 'rocket', 'chelsea', 'astronaut']


def photo(name: str) -> Image.Image:
    return Image.open(next(demo_image_root().glob(f'{name}.*'))).convert('RGB')


def render(name, lines, font, size, style, where) -> Image.Image:
    return print_lines(photo(name), lines, font, size, style, where)


def edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def fail(message: str) -> None:
    print(f'compare_ocr.py: {message}', file=sys.stderr)
    sys.exit(2)


def tesseract(psm: int):
    try:
        import pytesseract
    except ImportError:
        fail("Tesseract needs pytesseract: pip install pytesseract")
    if shutil.which('tesseract') is None:
        fail("no tesseract executable on PATH: apt-get install -y tesseract-ocr")

    def read(image: Image.Image) -> list[str]:
        found = pytesseract.image_to_data(image, lang='eng', config=f'--psm {psm} --oem 1',
                                          output_type=pytesseract.Output.DICT)
        return [t for t, c in zip(found['text'], found['conf']) if t.strip() and float(c) >= 0]
    return read


def measure(read, samples) -> dict:
    read(samples[0][0])  # warm-up
    errors = length = hits = truth = said = junk = 0
    times = []
    for image, text in samples:
        start = time.perf_counter()
        words = read(image)
        times.append(time.perf_counter() - start)
        if not text:
            junk += len(words)
            continue
        errors += edit_distance(' '.join(words), text)
        length += len(text)
        hits += sum((Counter(words) & Counter(text.split())).values())
        truth += len(text.split())
        said += len(words)
    return {'char acc': 1 - errors / length, 'word recall': hits / truth,
            'word precision': hits / max(said, 1), 'junk words': junk,
            's/image': statistics.mean(times)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--no-tesseract', action='store_true', help='measure RapidOCR only')
    p.add_argument('--word-gap', type=float, default=OcrConfig.word_gap,
                   help="OcrConfig.word_gap of RapidOCR's reader (default: %(default)s)")
    args = p.parse_args()
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    samples = [(render(*spec), ' '.join(spec[1])) for spec in PHOTOS_WITH_TEXT]
    samples += [(photo(name), '') for name in PHOTOS_WITHOUT_TEXT]
    try:
        reader = TextReader(OcrConfig(word_gap=args.word_gap))
    except (ValueError, ImportError, FileNotFoundError) as e:
        fail(str(e))
    engines = {'RapidOCR (TextReader)': lambda image: reader.read([image])[0].words}
    if not args.no_tesseract:
        engines['Tesseract --psm 11'] = tesseract(11)
        engines['Tesseract --psm 3'] = tesseract(3)
    print(f"{'engine':24} {'char acc':>9} {'recall':>7} {'precision':>9} {'junk':>5} {'s/image':>8}")
    for name, read in engines.items():
        m = measure(read, samples)
        print(f"{name:24} {m['char acc']:9.3f} {m['word recall']:7.3f} {m['word precision']:9.3f} "
              f"{m['junk words']:5d} {m['s/image']:8.2f}")


if __name__ == '__main__':
    main()
