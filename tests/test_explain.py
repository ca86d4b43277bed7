"""Tagger.predict(..., explain=True), the explain command and its picture."""
import subprocess
from pathlib import Path

import pytest
import torch

from graphmner import Tagger, models
from graphmner.data.demo import DEMO_OPTIONS, demo_image_root
from graphmner.graph import GraphOptions
from graphmner.graph.data_config import DataConfig

TEXT = 'Handsome Rob after a fish dinner in Paris'


def photo(name):
    return next(demo_image_root().glob(f'{name}.*'))


def untrained_tagger(name, tiny_encoder, cache):
    torch.manual_seed(0)
    extra = {} if name == 'bert-crf' else {'visual_dim': 42}  # the descriptors' width
    model = models.build(name, encoder=tiny_encoder, **extra)
    model.data_config = DataConfig(options=GraphOptions(**DEMO_OPTIONS), tokenizer='twitter2015')
    return Tagger(model, cache_dir=cache)


@pytest.fixture(scope='module')
def maf(tiny_encoder, graph_cache):
    return untrained_tagger('maf', tiny_encoder, graph_cache)


def test_explain_gives_what_the_model_read_per_word_and_entity(maf):
    p = maf.predict(TEXT, image=photo('astronaut'), explain=True)
    plain = maf.predict(TEXT, image=photo('astronaut'))
    assert p.labels == plain.labels and plain.evidence is None and 'evidence' not in plain.to_dict()
    e = p.evidence
    assert e.words == p.words and e.image_used == p.image_used is True
    assert len(e.entities) == len(p.entities)
    for entity, items in zip(p.entities, e.entities):
        assert items == e.top(entity.start, entity.end)
    regions = e.attention[0]
    assert len(regions.sources) == 49 and all(sum(r) == pytest.approx(1.0) for r in regions.weights)
    assert 0 < e.match_probability < 1
    assert p.to_dict()['evidence']['match_probability'] == e.match_probability


def test_another_photo_changes_the_evidence_of_maf_not_of_bert_crf(maf, tiny_encoder, graph_cache):
    bert = untrained_tagger('bert-crf', tiny_encoder, graph_cache)
    for tagger, changes in ((maf, True), (bert, False)):
        a, b = (tagger.predict(TEXT, image=photo(n), explain=True).evidence for n in ('astronaut', 'coffee'))
        assert (a != b) is changes
    assert not a.reads_image and "'bert-crf' reads no image" in a.notes[0]


HOSTILE = 'Rob <img src=x onerror=alert(1)> see https://evil.example/x in Paris'


def hostile_prediction(tagger):
    return tagger.predict(HOSTILE, image=photo('astronaut'), explain=True)


def test_html_is_self_contained_and_hostile_text_inert(maf):
    from graphmner.explain import to_html

    page = to_html(hostile_prediction(maf))
    assert '<script' not in page and '://' not in page and 'onerror=alert' not in page.replace(
        '&lt;img src=x onerror=alert(1)&gt;', '')
    assert "default-src 'none'" in page and page.count('class="heat"') == 49
    assert 'data:image/png;base64,' in page


def test_png_is_drawn(maf, tmp_path):
    from PIL import Image

    from graphmner.explain import draw

    out = draw(maf.predict(TEXT, image=photo('astronaut'), explain=True), tmp_path / 'why.png')
    with Image.open(out) as image:
        assert image.size == (1000, 600) and len(image.convert('RGB').getcolors(maxcolors=10 ** 6)) > 100


def test_a_prediction_without_evidence_is_refused(maf):
    from graphmner.explain import to_html

    with pytest.raises(ValueError, match=r'explain=True'):
        to_html(maf.predict(TEXT))


CHROMIUM = Path('/usr/bin/chromium')


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason='Debian chromium is not installed at /usr/bin/chromium')
def test_the_picture_renders_in_headless_chromium(maf, tmp_path):
    from PIL import Image

    from graphmner.explain import to_html

    page = tmp_path / 'why.html'
    page.write_text(to_html(hostile_prediction(maf)), encoding='utf-8')
    flags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
             '--disable-component-update', '--no-first-run', f'--user-data-dir={tmp_path / "profile"}']
    dom = subprocess.run([str(CHROMIUM), *flags, '--dump-dom', page.as_uri()], capture_output=True,
                         text=True, timeout=120).stdout
    # the hostile word is text in the words and no element; the heatmap and the photo are there
    assert 'onerror' in dom and '<img' not in dom and '&lt;' in dom
    assert dom.count('class="heat"') == 49 and 'id="photo"' in dom
    shot = tmp_path / 'shot.png'
    subprocess.run([str(CHROMIUM), *flags, f'--screenshot={shot}', '--window-size=1100,700', page.as_uri()],
                   capture_output=True, timeout=120)
    with Image.open(shot) as image:
        pixels = image.convert('RGB').crop((0, 0, 560, 600))
        colors = pixels.getcolors(maxcolors=10 ** 6)
        reds = sum(n for n, (r, g, b) in colors if r > 150 and g < 110 and b < 110)
    assert reds > 1000  # the photo under its red heatmap was painted


def test_the_command_draws_both_formats(tiny_encoder, graph_cache, maf, tmp_path, capsys):
    from graphmner.cli import main

    checkpoint = tmp_path / 'maf.pt'
    maf.model.save(checkpoint)
    outs = [tmp_path / 'why.png', tmp_path / 'why.html']
    main(['explain', str(checkpoint), '--text', TEXT, '--image', str(photo('coffee')), '--cache-dir',
          str(graph_cache), '--output', str(outs[0]), '--output', str(outs[1])])
    assert all(o.stat().st_size > 1000 for o in outs)
    assert 'P(image fits the text)' in capsys.readouterr().out


@pytest.mark.parametrize('argv, message', [
    (['--output', 'why.svg'], "--output 'why.svg': the suffix must be one of .png, .html"),
    (['--output', 'why.png', '--image', 'gone.jpg'], "--image 'gone.jpg' does not exist"),
])
def test_command_mistakes_are_one_line(argv, message, tmp_path, capsys, monkeypatch):
    from graphmner.cli import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit:
        main(['explain', 'best.pt', '--text', 'Rob', *argv])
    err = capsys.readouterr().err
    assert exit.value.code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_a_detected_person_is_drawn_as_a_labelled_box(tiny_encoder, graph_cache, tmp_path, monkeypatch):
    from PIL import Image, ImageChops

    from graphmner import explain

    # The demo's cascade finds the astronaut's face: a 'person' object that UMGF's gate reads.
    p = untrained_tagger('umgf', tiny_encoder, graph_cache).predict(TEXT, image=photo('astronaut'),
                                                                    explain=True)
    objects = [s for g in p.evidence.gates for s in g.sources if s.kind == 'object']
    assert objects and {s.label for s in objects} == {'person'} and all(s.box for s in objects)
    svg = explain.to_html(p).split('</svg>')[0]  # the summary below names 'person' too
    assert svg.count('class="object"') == 1 and '>person ' in svg
    with_objects = explain.draw(p, tmp_path / 'with.png')
    monkeypatch.setattr(explain, 'boxes', lambda evidence, words: [])
    without = explain.draw(p, tmp_path / 'without.png')
    with Image.open(with_objects) as a, Image.open(without) as b:
        changed = ImageChops.difference(a.convert('RGB'), b.convert('RGB')).getbbox()
    # the box and its label changed pixels, all on the photo (the left half of the 1000 px figure)
    assert changed is not None and changed[2] - changed[0] > 20 and changed[2] < 500
