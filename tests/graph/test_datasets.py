"""load_dataset on the real Twitter text (no images here) and on the demo photos."""
import pytest

from graphmner.data import read_conll
from graphmner.data.demo import demo_split_path
from graphmner.graph import load_dataset, schema


@pytest.fixture(scope='session')
def cache(graph_cache):
    return graph_cache


def test_twitter2017_test_graphs_follow_the_conll_file(shared_data, cache):
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
    again = load_dataset('twitter2017', 'test', data_root=shared_data, captions=captions, cache_dir=cache)
    assert again.processed_paths == graphs.processed_paths  # read from the cache, not rebuilt


def test_missing_data_root_is_explained(tmp_path):
    with pytest.raises(ValueError, match='--data-root'):
        load_dataset('twitter2015', 'train')
    with pytest.raises(FileNotFoundError, match='--data-root'):
        load_dataset('twitter2015', 'train', data_root=tmp_path)
    with pytest.raises(ValueError, match='available: demo'):
        load_dataset('twitter2020', 'train')
    with pytest.raises(ValueError, match='Unknown dataset option'):
        load_dataset('demo', 'train', vision_wieghts=None)


@pytest.mark.integration
def test_every_demo_graph_is_complete(cache):
    """Real photos through ResNet-50 and YOLO (random weights: no pretrained ones offline)."""
    for split in ('train', 'dev', 'test'):
        graphs = load_dataset('demo', split, cache_dir=cache)
        tweets = read_conll(demo_split_path(split))
        assert graphs.report['images_missing'] == 0
        for g, t in zip(graphs, tweets):
            assert g.validate()
            assert g.words == t.words
            assert all(g[n].num_nodes > 0 for n in schema.NODE_TYPES)
            assert g['region'].num_nodes == 49 and g['scale'].num_nodes == 16
            assert set(g.edge_types) == set(schema.EDGE_TYPES)


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
