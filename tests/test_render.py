"""displaCy rendering of predictions: entities with their confidence, hostile text inert, offline."""
import io
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
from PIL import Image

from graphmner.predict import Entity, Prediction
from graphmner.render import COLORS, RenderedHTML, render

#: Words that would run script if put into markup unescaped; each marks <body> with data-pwned.
HOSTILE_WORDS = ['</script><script>document.body.dataset.pwned=1</script>',
                 '<img src=x onerror="document.body.dataset.pwned=2">', 'http://evil.example/x', '&amp;']


def prediction() -> Prediction:
    words = ['RT', '@nba', ':', 'Kawhi', 'Leonard', *HOSTILE_WORDS, 'in', 'Toronto']
    labels = ['O', 'O', 'O', 'B-PER', 'I-PER'] + ['O'] * len(HOSTILE_WORDS) + ['O', 'B-LOC']
    n = len(words)
    return Prediction(words, labels, [Entity('Kawhi Leonard', 'PER', 3, 5, 0.9871),
                                      Entity('Toronto', 'LOC', n - 1, n, 0.996)])


def hostile_entity() -> Prediction:
    """An entity whose words and type are markup (a checkpoint's label set is data too)."""
    return Prediction([HOSTILE_WORDS[1], 'x'], ['B-<b>X</b>', 'O'],
                      [Entity(HOSTILE_WORDS[1], '<b onmouseover=alert(1)>X</b>', 0, 1, 0.5)])


class Shown(HTMLParser):
    """What a browser shows: the text of the page and of each <mark> (an entity), <body> attributes,
    and every element that could load or run something."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.text, self.marks, self.body, self.active, self._depth = '', [], {}, [], 0

    def handle_starttag(self, tag, attrs):
        if tag == 'body':
            self.body = dict(attrs)
        if tag in ('script', 'img', 'link', 'iframe', 'a') or any(name.startswith('on') for name, _ in attrs):
            self.active.append(tag)
        if tag == 'mark':
            self.marks.append('')
            self._depth = 1
        elif self._depth:
            self._depth += 1

    def handle_endtag(self, tag):
        if self._depth:
            self._depth -= 1

    def handle_data(self, data):
        self.text += data
        if self._depth:
            self.marks[-1] += data


def shown(markup: str) -> Shown:
    page = Shown()
    page.feed(markup)
    return page


def test_entities_carry_their_type_and_confidence_rounded_down():
    page = shown(render(prediction()))
    assert [' '.join(m.split()) for m in page.marks] == ['Kawhi Leonard PER 0.98', 'Toronto LOC 0.99']
    # the words read as they are, hostile ones included
    text = ' '.join(page.text.split())
    assert text.startswith('RT @nba : Kawhi Leonard PER 0.98 ' + ' '.join(HOSTILE_WORDS))


def test_hostile_text_is_text_and_nothing_loads():
    for p in (prediction(), hostile_entity()):
        for markup in (render(p, titles=['<img src=x onerror=alert(3)> http://t.co/x']),
                       render(p, page=True)):
            page = shown(markup)
            assert page.active == [] and '://' not in markup
            assert HOSTILE_WORDS[1] in page.text
    page = shown(render(hostile_entity()))
    assert ' '.join(page.marks[0].split()) == f'{HOSTILE_WORDS[1]} <b onmouseover=alert(1)>X</b> 0.50'


def test_page_is_offline_and_fragment_shows_in_jupyter():
    markup = render([prediction(), prediction()], titles=['img1', None], page=True)
    assert markup.startswith('<!DOCTYPE html>') and '<meta charset="utf-8">' in markup
    assert "default-src 'none'" in markup  # and nothing to load: no URL, source, link or import
    entities = [Entity('Kawhi', 'PER', 0, 1, 0.9), Entity('Toronto', 'LOC', 2, 3, 0.8)]
    clean = render(Prediction(['Kawhi', 'in', 'Toronto'], ['B-PER', 'O', 'B-LOC'], entities), page=True)
    assert not any(ref in clean for ref in ('://', 'url(', 'src=', 'href=', '@import'))
    assert len(shown(markup).marks) == 4
    fragment = render(prediction())
    assert isinstance(fragment, RenderedHTML) and fragment._repr_html_() == str(fragment)
    assert '<html' not in fragment and COLORS['PER'] in fragment and COLORS['LOC'] in fragment
    with pytest.raises(ValueError, match="'titles' needs one entry per prediction: got 1 for 2"):
        render([prediction()] * 2, titles=['a'])


def chromium():
    return next((shutil.which(n) for n in ('chromium', 'chromium-browser') if shutil.which(n)), None)


def headless(tmp_path, page, *flags) -> subprocess.CompletedProcess:
    path = tmp_path / 'page.html'
    path.write_text(page, encoding='utf-8')
    return subprocess.run(
        [chromium(), '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
         '--disable-component-update', '--no-first-run', f'--user-data-dir={tmp_path / "profile"}',
         '--virtual-time-budget=2000', *flags, path.as_uri()],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)


@pytest.mark.slow
def test_entities_show_and_hostile_text_runs_nothing_in_chromium(tmp_path):
    if chromium() is None:
        pytest.skip('no headless Chromium on PATH (apt-get install chromium)')
    # The fragment as a notebook embeds it: in a page whose own scripts run (no CSP), so a
    # hostile word that became markup would run too.
    fragment = render([prediction(), hostile_entity()])
    dom = headless(tmp_path, '<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>'
                   f'{fragment}<script>document.body.dataset.alive = "yes"</script></body></html>',
                   '--dump-dom').stdout
    page = shown(dom)
    assert page.body.get('data-alive') == 'yes', 'the page script did not run: nothing was checked'
    assert 'data-pwned' not in page.body, f'hostile text ran as script: {page.body}'
    assert [' '.join(m.split()) for m in page.marks][:2] == ['Kawhi Leonard PER 0.98', 'Toronto LOC 0.99']
    assert HOSTILE_WORDS[0] in page.text and HOSTILE_WORDS[1] in page.text
    # The whole page, drawn: the entities' colours are on screen.
    headless(tmp_path, render(prediction(), page=True), '--screenshot=shot.png', '--window-size=900,400')
    colors = {c for _, c in Image.open(io.BytesIO((tmp_path / 'shot.png').read_bytes()))
              .convert('RGB').getcolors(1 << 20)}
    for hex_color in (COLORS['PER'], COLORS['LOC']):
        assert tuple(int(hex_color[i:i + 2], 16) for i in (1, 3, 5)) in colors, hex_color
