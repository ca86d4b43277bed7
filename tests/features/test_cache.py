"""The feature cache: float16 storage read back as float32, the dtype in the key,
safetensors entries (never a pickle run), and many processes writing and reading one cache at once."""
import json
import multiprocessing
import pickle

import pytest
import torch
from conftest import fake_features
from safetensors.torch import save

from graphmner.features.cache import FEATURES_VERSION, FeatureCache, all_finite, read_entry
from graphmner.features.types import VISUAL_NODES, ImageFeatures

DIGEST = 'ab' * 32


def assert_same(a: ImageFeatures, b: ImageFeatures):
    other = b.to_dict()
    assert set(other) == set(a.to_dict()) == set(VISUAL_NODES)
    for node_type, node in a.to_dict().items():
        assert set(node) == set(other[node_type])
        for name, value in node.items():
            theirs = other[node_type][name]
            assert torch.equal(value, theirs) if isinstance(value, torch.Tensor) else value == theirs, name


def test_float16_round_trip_reads_float32_rounded_to_half(tmp_path):
    cache = FeatureCache(tmp_path, {'x': 1})
    features = fake_features(num_objects=3, dim=16)
    returned = cache.put(DIGEST, features)
    read = cache.get(DIGEST)
    assert_same(returned, read)  # graphs built before and after caching are equal
    for node_type in VISUAL_NODES:
        value = read[node_type].x
        assert value.dtype == torch.float32
        assert torch.equal(value, features[node_type].x.half().float()), node_type
        assert not torch.equal(value, features[node_type].x), f'{node_type}.x was not stored in float16'
        for name, attr in features[node_type].attrs.items():
            got = read[node_type][name]
            assert torch.equal(got, attr) and got.dtype == attr.dtype, name
    assert read.names('object') == features.names('object') == ['person', 'dog', 'person']
    stored, _ = read_entry(cache.path(DIGEST))
    assert stored['region.x'].dtype == torch.float16 and stored['region.box'].dtype == torch.float32


def test_float16_entries_take_half_the_disk(tmp_path):
    features = fake_features(num_objects=4, dim=2048)
    sizes = {}
    for dtype in (torch.float16, torch.float32):
        cache = FeatureCache(tmp_path, {'x': 1}, dtype=dtype)
        cache.put(DIGEST, features)
        sizes[dtype] = cache.path(DIGEST).stat().st_size
    assert 0.45 < sizes[torch.float16] / sizes[torch.float32] < 0.55


def test_the_key_records_the_storage_dtype(tmp_path):
    half, full = (FeatureCache(tmp_path, {'x': 1}, dtype=d) for d in (torch.float16, torch.float32))
    assert half.key != full.key and half.dir != full.dir
    half.put(DIGEST, fake_features())
    assert json.loads((half.dir / 'settings.json').read_text())['storage_dtype'] == 'float16'
    assert full.get(DIGEST) is None  # a float32 cache never reads float16 entries
    with pytest.raises(ValueError, match='stores torch.float16 or torch.float32, got torch.bfloat16'):
        FeatureCache(tmp_path, {'x': 1}, dtype=torch.bfloat16)


def test_a_matrix_beyond_float16_range_stays_float32(tmp_path):
    features = fake_features()
    features['image'].x = features['image'].x * 1e6
    cache = FeatureCache(tmp_path, {'x': 1})
    assert torch.equal(cache.put(DIGEST, features)['image'].x, features['image'].x)
    assert torch.equal(cache.get(DIGEST)['image'].x, features['image'].x) and cache.rejected == []


@pytest.mark.parametrize('dtype', [torch.float16, torch.float32, torch.float64])
@pytest.mark.parametrize('bad', [float('nan'), float('inf'), -float('inf')])
def test_all_finite_finds_any_nan_or_inf(dtype, bad):
    values = torch.randn(49, 2048).to(dtype)
    assert all_finite(values)
    for position in (0, 1234, values.numel() - 1):
        spoiled = values.clone()
        spoiled.view(-1)[position] = bad
        assert not all_finite(spoiled), position
        assert not all_finite(spoiled.t()), position  # a non-contiguous view too
    assert all_finite(torch.zeros(0, 2048, dtype=dtype)) and all_finite(torch.arange(5))


def test_views_and_shared_memory_are_stored_whole(tmp_path):
    """safetensors refuses non-contiguous tensors and tensors sharing memory; put copies them."""
    features = fake_features(num_objects=3, dim=16)
    boxes = torch.rand(49, 4)
    features['region'].x = torch.randn(16, 49).t()  # non-contiguous
    features['region'].attrs['box'] = boxes
    features['object'].attrs['box'] = boxes[:3]  # overlaps region.box
    cache = FeatureCache(tmp_path, {'x': 1})
    assert_same(cache.put(DIGEST, features), cache.get(DIGEST))
    assert torch.equal(cache.get(DIGEST)['object']['box'], boxes[:3]) and cache.rejected == []


def test_features_read_survive_their_file_rewritten_in_place(tmp_path):
    """get copies the tensors out of the file: a memory-mapped tensor would crash (SIGBUS) here."""
    cache = FeatureCache(tmp_path, {'x': 1})
    features = fake_features(num_objects=3, dim=16)
    cache.put(DIGEST, features)
    read = cache.get(DIGEST)
    cache.path(DIGEST).write_bytes(b'')  # truncated in place, the same file
    assert torch.equal(read['region']['box'], features['region']['box'])
    assert torch.equal(read['scale']['level'], features['scale']['level'])


def write_entry(cache, features, header):
    """Writes an entry by hand: ``features``' tensors beside ``header``."""
    tensors = {f'{t}.{k}': v.contiguous() for t, node in features.to_dict().items() for k, v in node.items()
               if isinstance(v, torch.Tensor)}
    cache.path(DIGEST).write_bytes(save(tensors, metadata=header))


@pytest.mark.parametrize('names, problem', [
    ('"person"', 'of the wrong type (object names is not a list of str)'),
    ('["person", 3]', 'of the wrong type (object names is not a list of str)'),
    ('["person"', 'unreadable (JSONDecodeError'),
    (None, "missing object ['names']"),
])
def test_object_names_that_are_not_a_list_of_str_are_refused(tmp_path, names, problem):
    cache = FeatureCache(tmp_path, {'x': 1})
    features = fake_features(num_objects=2, dim=16)
    cache.put(DIGEST, features)
    header = {'version': str(FEATURES_VERSION), 'settings': cache.key}
    write_entry(cache, features, {**header, **({'object.names': names} if names is not None else {})})
    assert cache.get(DIGEST) is None and cache.rejected[0][1].startswith(problem)
    write_entry(cache, features, {**header, 'object.names': '["person", "dog"]'})
    assert cache.get(DIGEST).names('object') == ['person', 'dog'] and len(cache.rejected) == 1


class Payload:
    """Unpickling it creates the file ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, 'w')


def test_a_pickle_at_an_entry_path_is_never_run(tmp_path):
    cache = FeatureCache(tmp_path, {'x': 1})
    cache.put(DIGEST, fake_features())
    marker = tmp_path / 'ran'
    entry = {'version': FEATURES_VERSION, 'settings': cache.key, 'features': fake_features().to_dict()}
    cache.path(DIGEST).write_bytes(pickle.dumps({**entry, 'run': Payload(marker)}))
    assert cache.get(DIGEST) is None and cache.rejected[0][1].startswith('unreadable')
    assert not marker.exists()
    pickle.loads(cache.path(DIGEST).read_bytes())  # the payload is live: a pickle reader would run it
    assert marker.exists()


def write_and_read(root, worker, rounds, found):
    """Puts every digest ``rounds`` times (each worker its own values) and reads them back
    between writes; records what the reads saw."""
    cache = FeatureCache(root, {'x': 1})
    digests = [f'{i:02x}' * 32 for i in range(6)]
    seen = 0
    for _ in range(rounds):
        for i, digest in enumerate(digests):
            cache.put(digest, fake_features(dim=256, seed=worker * 100 + i))
            for other in digests:
                seen += cache.get(other) is not None
    found.put((worker, seen, [str(p) for p, _ in cache.rejected]))


@pytest.mark.slow
def test_processes_writing_one_cache_at_once_never_expose_a_partial_entry(tmp_path):
    context = multiprocessing.get_context('fork')  # the cache is plain files: no torch state to share
    found = context.Queue()
    workers = [context.Process(target=write_and_read, args=(tmp_path, w, 15, found)) for w in range(4)]
    for w in workers:
        w.start()
    results = [found.get(timeout=300) for _ in workers]
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    assert all(rejected == [] for _, _, rejected in results), results  # never a cut-off or mixed file
    assert sum(seen for _, seen, _ in results) > 0
    assert not [p for p in tmp_path.rglob('*') if p.name.endswith('.tmp')]
    cache = FeatureCache(tmp_path, {'x': 1})
    # every entry is whole and is one worker's features, never a mixture
    for i in range(6):
        got = cache.get(f'{i:02x}' * 32)
        written = [fake_features(dim=256, seed=w * 100 + i)['region'].x.half().float() for w in range(4)]
        assert any(torch.equal(got['region'].x, x) for x in written)
