"""Tagger: new tweets tagged with a trained model, as `decode` tags the same graphs."""
import json
import math
import time

import pytest
import torch
from conftest import load_experiment
from PIL import Image
from torch_geometric.data import Batch

from graphmner import Tagger
from graphmner.cli import main
from graphmner.data.demo import demo_image_root
from graphmner.graph import load_dataset
from graphmner.predict import Entity, PredictionError


@pytest.fixture(scope='module')
def trained(tiny_encoder, graph_cache, tmp_path_factory):
    """A UMGF trained for 2 epochs on the demo (the weight-free image path)."""
    out = tmp_path_factory.mktemp('umgf-run')
    load_experiment('run').main(['--model', 'umgf', '--encoder', tiny_encoder, '--epochs', '2', '--seed', '1',
                                 '--out', str(out), '--cache-dir', str(graph_cache)])
    return out / 'best.pt'


@pytest.fixture(scope='module')
def tagger(trained, graph_cache):
    return Tagger.load(trained, cache_dir=graph_cache)


def test_predict_equals_decode_on_the_same_graphs(tagger, graph_cache):
    graphs = list(load_dataset('demo', 'test', cache_dir=graph_cache))
    transform = tagger.model.graph_transform()
    expected = tagger.model.decode(Batch.from_data_list([transform(g.clone()) for g in graphs]))
    assert [labels for labels, _ in tagger.tag_graphs(graphs)] == expected
    # and building the graphs again from words and image paths gives the same tags
    root = demo_image_root()
    images = [next(root.glob(f'{g.image_id}.*')) for g in graphs]
    predictions = tagger.predict([list(g.words) for g in graphs], images=images)
    assert [p.labels for p in predictions] == expected
    assert all(p.image_used for p in predictions)


def test_entities_and_confidences(tagger):
    p = tagger.predict('Barack Obama visits Paris with the Lakers')
    assert p.words == ['Barack', 'Obama', 'visits', 'Paris', 'with', 'the', 'Lakers']
    assert len(p.labels) == 7
    for e in p.entities:
        assert 0 < e.confidence <= 1
        assert e.text == ' '.join(p.words[e.start:e.end]) and p.labels[e.start] == f'B-{e.type}'
    _, probs = tagger.tag_graphs(tagger.graphs([p.words], [None]))[0]
    for e in p.entities:
        assert e.confidence == min(probs[e.start:e.end])
        assert (e.confidence == 1.0) == all(q == 1.0 for q in probs[e.start:e.end])
    assert all(0 < q <= 1 and math.isfinite(q) for q in probs)


def test_render_draws_each_entity_with_its_confidence(tagger):
    p = tagger.predict('Barack Obama visits Paris with the Lakers')
    p.entities = [Entity('Barack Obama', 'PER', 0, 2, 0.875)]  # the untrained tiny model may find none
    markup = tagger.render(p)
    assert markup._repr_html_() == markup and markup.count('<mark class="entity"') == 1
    assert 'Barack Obama' in markup and 'PER 0.87' in markup and 'visits Paris with the Lakers' in markup
    assert tagger.render([p, p], titles=['a', 'b'], page=True).startswith('<!DOCTYPE html>')


def test_missing_and_broken_images_are_flagged_not_raised(tagger, tmp_path):
    broken = tmp_path / 'broken.jpg'
    broken.write_bytes(b'<html>not a photo</html>')
    good = next(demo_image_root().glob('astronaut.*'))
    text, gone, bad, fine = tagger.predict(['Rob after a fish dinner'] * 4,
                                           images=[None, tmp_path / 'gone.jpg', broken, good])
    assert not text.image_used and 'no image' in text.notes[0]
    assert not gone.image_used and gone.notes[0] == 'image unusable (missing): tagged from the text'
    assert not bad.image_used and bad.notes[0] == 'image unusable (not_an_image): tagged from the text'
    assert fine.image_used and fine.notes == []
    assert text.labels == gone.labels == bad.labels  # all three went the text path


def test_a_folder_as_image_is_one_cause_in_the_note_and_the_log(tagger, trained, graph_cache, tmp_path,
                                                                  capsys, caplog):
    [folder] = tagger.predict(['Rob after a fish dinner'], images=[tmp_path])
    assert folder.notes == ['image unusable (missing): tagged from the text']
    assert '1 missing or unusable (1 missing)' in caplog.text  # the extractor's count: the same word
    # a file of tweets (unlike one --text tweet) flags them, and the command counts them
    source, target = tmp_path / 'in.jsonl', tmp_path / 'out.jsonl'
    good = next(demo_image_root().glob('astronaut.*'))
    source.write_text(''.join(json.dumps({'text': 'Rob after a fish dinner', 'image': str(image)}) + '\n'
                              for image in (tmp_path / 'gone.jpg', tmp_path, good)))
    main(['predict', str(trained), '--input', str(source), '--output', str(target), '--cache-dir',
          str(graph_cache)])
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    entities = sum(len(row['entities']) for row in rows)
    assert capsys.readouterr().out.endswith(f"entit{'y' if entities == 1 else 'ies'}; 2 with an unusable "
                                            f'image, tagged from the text: see their notes) -> {target}\n')
    assert [row['image_used'] for row in rows] == [False, False, True]


def test_a_text_model_reads_no_image(tiny_encoder, graph_cache, tmp_path):
    load_experiment('run').main(['--model', 'bert-crf', '--encoder', tiny_encoder, '--epochs', '1',
                                 '--out', str(tmp_path), '--cache-dir', str(graph_cache)])
    tagger = Tagger.load(tmp_path / 'best.pt', cache_dir=graph_cache)
    image = tmp_path / 'photo.png'
    Image.new('RGB', (64, 64), 'red').save(image)
    p = tagger.predict('Rob after a fish dinner', image=image)
    assert not p.image_used and "'bert-crf' reads no image" in p.notes[0]


def test_an_extractor_that_cannot_load_is_refused(trained, graph_cache, tmp_path):
    tagger = Tagger.load(trained, cache_dir=tmp_path)  # an empty cache: features must be computed
    tagger.options.vision_arch, tagger.options.vision_weights = 'resnet50', str(tmp_path / 'gone.pth')
    with pytest.raises(PredictionError, match="vision weights '.*gone.pth'.*cannot be loaded here"):
        tagger.predict('Rob after a fish dinner', image=next(demo_image_root().glob('coffee.*')))


def test_words_is_pre_split_input_and_a_flat_list_is_several_raw_tweets(tagger):
    words = ['does', 'insulin', 'help', 'Barack', 'Obama', 'in', 'Paris', '?']
    one = tagger.predict(words=words)
    assert one.words == words and len(one.labels) == 8
    assert tagger.predict(' '.join(words)).labels == one.labels  # the same tweet as raw text
    assert [p.words for p in tagger.predict(words=[words, ['Rob']])] == [words, ['Rob']]
    assert tagger.predict(words=[words], images=[None])[0].labels == one.labels
    several = tagger.predict(words)  # the documented rule: eight one-word raw tweets
    assert len(several) == 8 and [p.words for p in several] == [[w] for w in words]
    with pytest.raises(ValueError, match="exactly one of them"):
        tagger.predict('a b', words=['a', 'b'])
    with pytest.raises(ValueError, match="exactly one of them"):
        tagger.predict()
    with pytest.raises(ValueError, match="not one string"):
        tagger.predict(words='does insulin help')
    with pytest.raises(ValueError, match="a list of such lists, got"):
        tagger.predict(words=[['a'], 'b c'])
    with pytest.raises(ValueError, match="takes 'image', not 'images'"):
        tagger.predict(words=words, images=[None])


def test_argument_errors(tagger):
    with pytest.raises(ValueError, match="one entry per tweet: got 1 for 2"):
        tagger.predict(['a b', 'c d'], images=[None])
    with pytest.raises(ValueError, match="takes 'images'"):
        tagger.predict(['a b'], image='x.jpg')
    with pytest.raises(PredictionError, match='no words'):
        tagger.predict('   ')
    assert torch.is_grad_enabled()


def test_a_profiled_predict_names_its_stages_and_leaves_no_hook(trained, graph_cache):
    """The demo tweets with their photos (features from the warm cache): every stage of prediction is
    named, the stages add up to the call's time, and no hook stays on the model."""
    from graphmner.train.profile import (
        BATCHING,
        BUILD_GRAPHS,
        DECODING,
        ENCODER_FORWARD,
        MARGINALS,
        OTHER,
        RESULTS,
        TOKENIZE,
        VITERBI,
        StageClock,
        forward_stage,
    )

    clock = StageClock()
    tagger = Tagger.load(trained, cache_dir=graph_cache, profile=clock)
    graphs = list(load_dataset('demo', 'test', cache_dir=graph_cache))
    root = demo_image_root()
    images = [next(root.glob(f'{g.image_id}.*')) for g in graphs]
    tagger.predict([list(g.words) for g in graphs], images=images)  # the cache is warm from here on
    clock.seconds.clear()
    start = time.perf_counter()
    predictions = tagger.predict([list(g.words) for g in graphs], images=images)
    seconds = time.perf_counter() - start
    assert all(p.image_used for p in predictions)
    layers = {forward_stage(name) for name in ('layers', 'visual_mlp', 'text_proj', 'emission',
                                               'umgf (own code)')}
    assert {BUILD_GRAPHS, BATCHING, DECODING, TOKENIZE, ENCODER_FORWARD, VITERBI, MARGINALS, RESULTS,
            OTHER} | layers <= set(clock.seconds)
    assert clock.total <= seconds and seconds - (clock.total - clock.seconds[OTHER]) < 0.1 * seconds
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in tagger.model.modules())
    assert 'decode' not in vars(tagger.model.crf) and 'tokenize' not in vars(tagger.model.encoder)
