"""The feature cache: float16 storage read back as float32, the dtype in the key,
and many processes writing and reading one cache at once."""
import json
import multiprocessing

import pytest
import torch
from conftest import fake_features

from graphmner.features.cache import FeatureCache, all_finite
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
    stored = torch.load(cache.path(DIGEST), weights_only=True)['features']
    assert stored['region']['x'].dtype == torch.float16 and stored['region']['box'].dtype == torch.float32


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
