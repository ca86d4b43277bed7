"""load_dataset on the real Twitter text (no images here) and on the demo photos;
the graph cache's key, its recovery from damaged entries and two processes at once."""
import dataclasses
import json
import os
import subprocess
import sys
import time

import pytest
from conftest import ROOT

from graphmner.data import read_conll
from graphmner.data.demo import demo_split_path
from graphmner.graph import GraphBuilder, GraphOptions, build_graph, load_dataset, schema
from graphmner.graph.inspect import display_graph


@pytest.fixture(scope='session')
def cache(graph_cache):
    return graph_cache


def test_twitter2017_test_graphs_follow_the_conll_file(shared_data, cache, monkeypatch):
    captions = shared_data / 'captions' / 'blip2_twitter2017.txt'
    graphs = load_dataset('twitter2017', 'test', data_root=shared_data, captions=captions, cache_dir=cache)
    tweets = read_conll(shared_data / 'twitter2017' / 'test.txt')
    assert len(graphs) == len(tweets) == 723
    assert graphs.report['images_missing'] == 723
    with_caption = 0
    for g, t in zip(graphs, tweets):
        assert g.words == t.words and g.labels == t.labels and g['word'].num_nodes == len(t.words)
        assert g['image'].missing.item() and g['region'].num_nodes == 0
        with_caption += g['aux'].num_nodes > 0
    assert with_caption / len(graphs) >= 0.99
    monkeypatch.setattr(GraphBuilder, '__call__', lambda *a: pytest.fail('rebuilt instead of read'))
    again = load_dataset('twitter2017', 'test', data_root=shared_data, captions=captions, cache_dir=cache)
    assert not again.built and len(again) == 723  # read from the cache, not rebuilt
    assert again[0].words == graphs[0].words


def test_missing_data_root_is_explained(tmp_path):
    with pytest.raises(ValueError, match='--data-root'):
        load_dataset('twitter2015', 'train')
    with pytest.raises(FileNotFoundError, match='--data-root'):
        load_dataset('twitter2015', 'train', data_root=tmp_path)
    with pytest.raises(ValueError, match="Unknown dataset 'twitter2020': neither one of demo"):
        load_dataset('twitter2020', 'train')
    with pytest.raises(ValueError, match='Unknown dataset option'):
        load_dataset('demo', 'train', vision_wieghts=None)


#: What the demo's Haar cascades find on its photos (none on the others): the astronaut's face,
#: the photographer's profile, the cat's muzzle, and two false faces (the blurred clock, gravel).
DEMO_OBJECTS = {'astronaut': ['person'], 'camera': ['person'], 'chelsea': ['cat'],
                'clock_motion': ['person'], 'gravel': ['person']}


@pytest.mark.integration
def test_every_demo_graph_is_complete(cache):
    """Real photos through the demo's weight-free descriptors and OpenCV's Haar cascades."""
    for split in ('train', 'dev', 'test'):
        graphs = load_dataset('demo', split, cache_dir=cache)
        tweets = read_conll(demo_split_path(split))
        assert graphs.report['images_missing'] == 0
        assert graphs.report['objects'] == sum(len(DEMO_OBJECTS.get(t.image_id, [])) for t in tweets)
        for g, t in zip(graphs, tweets):
            assert g.validate()
            assert g.words == t.words
            assert all(g[n].num_nodes > 0 for n in schema.NODE_TYPES if n != schema.OBJECT)
            assert g.object_names == DEMO_OBJECTS.get(t.image_id, [])
            assert g['object'].num_nodes == len(g.object_names)
            assert g.visual_backend.startswith('descriptors') and 'OpenCV cascades' in g.visual_backend
            # ITA's object tags read the detections
            assert [w for w, s in zip(g.aux_words, g['aux'].source.tolist())
                    if schema.AUX_SOURCES[s] == 'tag'] == g.object_names
            assert g['region'].x.shape == (49, 42) and g['scale'].x.shape == (16, 42)
            assert g.edge_types == list(schema.STORED)
            assert display_graph(g).edge_types == list(schema.EDGE_TYPES)


def test_hostile_images_never_crash_a_build(tmp_path):
    """Broken, empty, fake and tiny images are recorded as missing; a good photo is used."""
    import shutil

    from graphmner.data.demo import demo_image_root

    (tmp_path / 'twitter2017').mkdir()
    ids = ['good', 'truncated', 'empty', 'text', 'tiny', 'absent']
    lines = ''.join(f'IMGID:{i}\nSee\tO\nRob\tB-PER\n\n' for i in ids)
    (tmp_path / 'twitter2017' / 'test.txt').write_text(lines)
    images = tmp_path / 'images'
    images.mkdir()
    shutil.copy(demo_image_root() / 'chelsea.png', images / 'good.png')
    (images / 'truncated.jpg').write_bytes((demo_image_root() / 'rocket.jpg').read_bytes()[:2000])
    (images / 'empty.jpg').write_bytes(b'')
    (images / 'text.jpg').write_text('<html>not an image</html>')
    from PIL import Image
    Image.new('RGB', (2, 2)).save(images / 'tiny.png')
    graphs = load_dataset('twitter2017', 'test', data_root=tmp_path, image_root=images,
                          cache_dir=tmp_path / 'cache', vision_weights=None,
                          detector_weights='yolov8n.yaml')
    missing = [g.image_id for g in graphs if g['image'].missing.item()]
    assert missing == ids[1:]
    assert graphs.report['images_missing'] == 5 and sum(graphs.report['image_problems'].values()) == 5
    good = graphs[0]  # keep the graph alive: its stores only hold a weak reference to it
    assert good['region'].num_nodes == 49


@pytest.mark.integration
def test_demo_astronaut_has_her_face_as_a_person_grounded_to_woman(cache):
    """The issue's figure: the frontal-face cascade finds the astronaut's face at about
    (177, 66, 95, 95) (x, y, w, h in pixels of the 512 x 512 photo); UMGF's rule grounds the
    noun phrase 'the first woman' to it (the synonym table maps woman to person)."""
    g = load_dataset('demo', 'train', cache_dir=cache)[0]
    assert g.image_id == 'astronaut' and g.object_names == ['person']
    x0, y0, x1, y1 = (g['object'].box[0] * 512).tolist()
    assert (x0, y0, x1 - x0, y1 - y0) == pytest.approx((177, 66, 95, 95), abs=3)
    grounded = g[schema.GROUNDS].edge_index[1].tolist()
    assert [g.words[i] for i in grounded] == ['the', 'first', 'woman']


# -- the graph cache ---------------------------------------------------------------------------

#: A changed value for every GraphOptions field: each must give a new cache entry.
CHANGED = {'vision_arch': 'resnet152', 'vision_weights': 'other.pth', 'detector_arch': 'cascade',
           'detector_weights': 'yolov8s.pt', 'cascades': ('profileface',), 'hog_people': True,
           'top_k': 7, 'detector_conf': 0.5, 'scale_grid': 3, 'spacy_model': 'en_core_web_lg',
           'aux_sources': ('caption', ), 'ocr': True, 'ocr_min_confidence': 0.9, 'extra': {'note': 1}}


@pytest.fixture
def small(tmp_path):
    """A two-tweet Twitter-2017 test split and a caption file."""
    (tmp_path / 'twitter2017').mkdir()
    conll = tmp_path / 'twitter2017' / 'test.txt'
    conll.write_text('IMGID:1\nSee\tO\nRob\tB-PER\n\nIMGID:2\nHi\tO\n\n')
    captions = tmp_path / 'captions.txt'
    captions.write_text('1.jpg :a man\n')
    return tmp_path, conll, captions


@pytest.fixture
def builds(monkeypatch):
    """Counts graph builds; each build is text-only (no extractor, no spaCy)."""
    calls = []

    def build(self, tweets):
        calls.append(self)
        return [build_graph(t) for t in tweets], {'tweets': len(tweets)}
    monkeypatch.setattr(GraphBuilder, '__call__', build)
    return calls


def test_the_cache_key_changes_exactly_when_the_graphs_would(small, builds, tmp_path, monkeypatch):
    assert set(CHANGED) == {f.name for f in dataclasses.fields(GraphOptions)}, 'a field without a test'
    root, conll, captions = small
    images = root / 'images'
    images.mkdir()
    options = {'data_root': root, 'captions': captions, 'image_root': images, 'cache_dir': root / 'cache'}
    load = lambda **changes: load_dataset('twitter2017', 'test', **{**options, **changes})
    assert load().built and len(builds) == 1

    # Nothing that leaves the graphs as they are rebuilds: the same call, a transform,
    # touched files, the caption file moved, the image folder named relatively, defaults spelled out.
    os.utime(conll, ns=(time.time_ns() + 10**10, ) * 2)
    os.utime(captions, ns=(time.time_ns() + 10**10, ) * 2)
    moved = root / 'elsewhere.txt'
    moved.write_bytes(captions.read_bytes())
    monkeypatch.chdir(root)
    for same in ({}, {'transform': lambda g: g}, {'captions': moved}, {'image_root': 'images'},
                 dataclasses.asdict(GraphOptions())):
        assert not load(**same).built, same
    assert len(builds) == 1

    # Everything that changes them does.
    for field, value in CHANGED.items():
        assert load(**{field: value}).built, field
    assert len(builds) == 1 + len(CHANGED)
    assert load(image_root=root).built and load(captions=None).built
    for version in ('SCHEMA_VERSION', 'BUILDER_VERSION'):
        with monkeypatch.context() as patch:
            patch.setattr(f'graphmner.graph.datasets.{version}', -1)
            assert load().built, version
    # Files edited in place, with their size and time stamp kept: the content is the key.
    for path, old, new in ((captions, 'a man', 'a dog'), (conll, 'Rob\tB-PER', 'Rob\tB-ORG')):
        stat = path.stat()
        path.write_text(path.read_text().replace(old, new))
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert path.stat().st_size == stat.st_size
        assert load().built, path.name
    assert load()[0].labels == ['O', 'B-ORG']
    built = len(builds)
    captions.write_text('1.jpg :a man\n')
    conll.write_text(conll.read_text().replace('B-ORG', 'B-PER'))
    assert not load().built and len(builds) == built  # the first entry is still there


@pytest.mark.parametrize('damage', ['truncated', 'garbage', 'report-gone', 'graphs-lost'])
def test_a_damaged_graph_cache_entry_is_rebuilt_and_logged(small, builds, caplog, damage):
    root, _, captions = small
    load = lambda: load_dataset('twitter2017', 'test', data_root=root, captions=captions,
                                cache_dir=root / 'cache')
    first = load()
    entry = first.processed_paths[0]
    data = open(entry, 'rb').read()
    report = entry[:-3] + '.json'
    if damage == 'truncated':
        open(entry, 'wb').write(data[:len(data) // 2])
    elif damage == 'garbage':
        open(entry, 'wb').write(b'PK\x03\x04' + bytes(100))
    elif damage == 'report-gone':
        os.remove(report)
    else:  # a report for more tweets than the file holds
        with open(report, 'w') as f:
            json.dump({'tweets': 3}, f)
    with caplog.at_level('WARNING', logger='graphmner.data'):
        again = load()
    assert again.built and len(builds) == 2
    assert f"graph cache entry '{entry}' is unusable" in caplog.text
    assert [g.words for g in again] == [g.words for g in first] and again.report == {'tweets': 2}
    assert not load().built  # whole again


CONCURRENT_BUILD = """
import hashlib, json, os, sys, time
from pathlib import Path
import torch
from graphmner.graph import GraphBuilder, load_dataset
root, me = Path(sys.argv[1]), sys.argv[2]
build = GraphBuilder.__call__
def slow_build(self, tweets):  # both processes would be building at once without the lock
    time.sleep(2)
    return build(self, tweets)
GraphBuilder.__call__ = slow_build
(root / f'ready-{me}').touch()
while not (root / 'go').exists():
    time.sleep(0.01)
from graphmner.data.demo import DEMO_OPTIONS
graphs = load_dataset('twitter2017', 'test', data_root=root, image_root=root / 'images',
                      cache_dir=root / 'cache', **DEMO_OPTIONS)
digest = hashlib.sha256()
for g in graphs:
    for store in g.stores:
        for key in sorted(store.keys()):
            value = store[key]
            digest.update(key.encode())
            digest.update(value.numpy().tobytes() if torch.is_tensor(value) else repr(value).encode())
print(json.dumps({'built': graphs.built, 'graphs': digest.hexdigest(), 'report': graphs.report}))
"""


@pytest.mark.slow
def test_two_processes_building_one_dataset_get_identical_whole_caches(tmp_path):
    """Two real processes load the same split into one empty cache at the same moment: one
    builds (graphs and image features), the other waits and reads; both get the same graphs,
    and every cache entry reads back whole."""
    import shutil

    from graphmner.data.demo import demo_image_root
    from graphmner.features.cache import FeatureCache

    (tmp_path / 'twitter2017').mkdir()
    (tmp_path / 'twitter2017' / 'test.txt').write_text(
        ''.join(f'IMGID:{i}\nSee\tO\nRob\tB-PER\n\n' for i in ('chelsea', 'coffee', 'chelsea')))
    (tmp_path / 'images').mkdir()
    for name in ('chelsea', 'coffee'):
        shutil.copy(demo_image_root() / f'{name}.png', tmp_path / 'images' / f'{name}.png')
    env = {**os.environ, 'PYTHONPATH': str(ROOT), 'HF_HUB_OFFLINE': '1', 'YOLO_OFFLINE': 'true',
           'OMP_NUM_THREADS': '1'}
    procs = [subprocess.Popen([sys.executable, '-c', CONCURRENT_BUILD, str(tmp_path), str(i)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in (1, 2)]
    deadline = time.time() + 120
    while not all((tmp_path / f'ready-{i}').exists() for i in (1, 2)) and time.time() < deadline:
        time.sleep(0.05)
    (tmp_path / 'go').touch()
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    assert sorted(o['built'] for o in outputs) == [False, True]
    assert outputs[0]['graphs'] == outputs[1]['graphs'] and outputs[0]['report'] == outputs[1]['report']
    assert outputs[0]['report']['images_missing'] == 0
    assert not list((tmp_path / 'cache').rglob('.*.tmp'))
    [settings] = (tmp_path / 'cache' / 'features').glob('*/settings.json')
    cache = FeatureCache(tmp_path / 'cache' / 'features', json.loads(settings.read_text()))
    entries = list(cache.dir.rglob('*.safetensors'))
    assert len(entries) == 2  # one per distinct photo
    assert all(cache.get(entry.stem) is not None for entry in entries) and not cache.rejected
