"""Tests of the ``IMGID:`` CoNLL reader and writer."""
import pickle
import warnings
from pathlib import Path

import pytest
from conftest import SHARED, assert_names_first_faulty_line

from graphmner.data.conll import (
    ConllFormatError,
    ConllFormatWarning,
    ConllLayout,
    ConllTweets,
    Tweet,
    read_conll,
    write_conll,
)

DATA_ROOT = SHARED / 'data'
needs_data = pytest.mark.skipif(
    not DATA_ROOT.is_dir(),
    reason=f"the Twitter-2015/2017 text files are not at {DATA_ROOT}")

# (dataset, split, tweets, B- tags, tweets with a stray I-, stray I- labels)
REAL_FILES = [
    ('twitter2015', 'train', 4000, 6166, 166, 186),
    ('twitter2015', 'valid', 1000, 1541, 46, 53),
    ('twitter2015', 'test', 3257, 5072, 131, 135),
    ('twitter2017', 'train', 3373, 6049, 0, 0),
    ('twitter2017', 'valid', 723, 1324, 0, 0),
    ('twitter2017', 'test', 723, 1351, 0, 0),
]


def write_bytes(tmp_path: Path, data: bytes, name: str = 'tweets.txt') -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@needs_data
@pytest.mark.parametrize('dataset,split,n_tweets,n_entities,n_stray_tweets,n_stray',
                         REAL_FILES, ids=[f'{d}-{s}' for d, s, *_ in REAL_FILES])
def test_real_file_counts_and_byte_round_trip(tmp_path, dataset, split, n_tweets,
                                              n_entities, n_stray_tweets, n_stray):
    path = DATA_ROOT / dataset / f'{split}.txt'
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        tweets = read_conll(path)
    assert type(tweets) is ConllTweets and isinstance(tweets, list)
    assert len(tweets) == n_tweets
    assert sum(label.startswith('B-') for t in tweets for label in t.labels) == n_entities
    assert all(len(t.words) == len(t.labels) > 0 for t in tweets)
    assert not any('OTHER' in label for t in tweets for label in t.labels)

    messages = [str(w.message) for w in caught if issubclass(w.category, ConllFormatWarning)]
    if n_stray_tweets:
        assert len(messages) == 1
        assert f"{n_stray_tweets} tweets contain I- after O" in messages[0]
        assert f"({n_stray} such labels" in messages[0]
    else:
        assert messages == []

    assert tweets.layout.misc_spelling == ('OTHER' if dataset == 'twitter2015' else 'MISC')
    assert tweets.layout.ends_with_blank_line == (dataset == 'twitter2017')

    copy = tmp_path / 'copy.txt'
    write_conll(tweets, copy)
    assert copy.read_bytes() == path.read_bytes()


@needs_data
def test_reads_tweets_and_maps_other_to_misc(tmp_path):
    path = write_bytes(tmp_path, b"IMGID:42\nRT\tO\n#Oscars\tB-OTHER\nnight\tI-OTHER\n\n"
                                 b"IMGID:43\nParis\tB-LOC\n")
    tweets = read_conll(path)
    assert tweets == [Tweet('42', ['RT', '#Oscars', 'night'], ['O', 'B-MISC', 'I-MISC']),
                      Tweet('43', ['Paris'], ['B-LOC'])]
    assert tweets.layout == ConllLayout(misc_spelling='OTHER', trailing_newlines=1)


def test_tokens_keep_unusual_whitespace(tmp_path):
    # The released files have tokens such as '\xa0' and '\u200b'; U+2028 is a
    # line break for str.splitlines but not for the format.
    words = ['\xa0', '\u200b', 'a\u2028b', '\x85']
    text = 'IMGID:1\n' + ''.join(f'{w}\tO\n' for w in words) + '\n'
    path = write_bytes(tmp_path, text.encode('utf-8'))
    assert read_conll(path)[0].words == words


def test_crlf_and_bom(tmp_path):
    data = (b'\xef\xbb\xbfIMGID:1\r\nParis\tB-LOC\r\nrocks\tO\r\n\r\n'
            b'IMGID:2\r\nhi\tO\r\n\r\n')
    path = write_bytes(tmp_path, data)
    tweets = read_conll(path)
    assert [t.image_id for t in tweets] == ['1', '2']
    assert tweets[0].words == ['Paris', 'rocks'] and tweets[0].labels == ['B-LOC', 'O']
    assert tweets.layout == ConllLayout(newline='\r\n', bom=True, trailing_newlines=2)

    copy = tmp_path / 'copy.txt'
    write_conll(tweets, copy)
    assert copy.read_bytes() == data


def test_unterminated_last_line_round_trips(tmp_path):
    data = b'IMGID:1\nhi\tO'
    tweets = read_conll(write_bytes(tmp_path, data))
    assert tweets.layout.trailing_newlines == 0
    write_conll(tweets, tmp_path / 'copy.txt')
    assert (tmp_path / 'copy.txt').read_bytes() == data


def test_lenient_separators(tmp_path):
    # Extra blank lines and a missing separator both read; the writer
    # normalises them to one blank line.
    path = write_bytes(tmp_path, b'\n\nIMGID:1\na\tO\nIMGID:2\nb\tO\n\n\n\nIMGID:3\nc\tO\n\n')
    tweets = read_conll(path)
    assert [(t.image_id, t.words) for t in tweets] == [('1', ['a']), ('2', ['b']), ('3', ['c'])]
    write_conll(tweets, tmp_path / 'copy.txt')
    assert (tmp_path / 'copy.txt').read_bytes() == (
        b'IMGID:1\na\tO\n\nIMGID:2\nb\tO\n\nIMGID:3\nc\tO\n\n')


def test_stray_inside_labels_are_kept_and_counted_once(tmp_path):
    path = write_bytes(tmp_path, (
        b"IMGID:1\nthe\tO\nRed\tI-ORG\nSox\tI-ORG\n\n"        # I- after O (line 3)
        b"IMGID:2\nGeorge\tB-PER\nZimmerman\tI-PER\n\n"       # well formed
        b"IMGID:3\nNew\tI-LOC\nYork\tB-LOC\nTimes\tI-ORG\n"    # I- first, I- after LOC
    ))
    with pytest.warns(ConllFormatWarning) as record:
        tweets = read_conll(path)
    assert len(record) == 1
    message = str(record[0].message)
    assert message.startswith(f"{path}: 2 tweets contain I- after O or after another type")
    assert "(3 such labels, the first at line 3)" in message
    assert "kept as written" in message
    assert tweets[0].labels == ['O', 'I-ORG', 'I-ORG']
    assert tweets[2].labels == ['I-LOC', 'B-LOC', 'I-ORG']


def test_mixed_misc_spellings_warn(tmp_path):
    path = write_bytes(tmp_path, b"IMGID:1\na\tB-MISC\n\nIMGID:2\nb\tB-OTHER\n\n")
    with pytest.warns(ConllFormatWarning, match="spelled both MISC and OTHER"):
        tweets = read_conll(path)
    assert [t.labels for t in tweets] == [['B-MISC'], ['B-MISC']]
    assert tweets.layout.misc_spelling == 'MISC'


@pytest.mark.parametrize('data,line,reason', [
    (b"IMGID:1\nParis B-LOC\n", 2, "exactly one tab"),
    (b"IMGID:1\nParis\tB-LOC\tx\n", 2, "exactly one tab"),
    (b"IMGID:1\nok\tO\nParis\tE-CITY\n", 3, "unknown label 'E-CITY'"),
    (b"IMGID:1\nParis\tb-loc\n", 2, "unknown label 'b-loc'"),
    (b"IMGID:1\n\tO\n", 2, "empty token"),
    (b"Paris\tB-LOC\nIMGID:1\nhi\tO\n", 1, "comes before any 'IMGID:<id>' line"),
    (b"IMGID:1\nhi\tO\n\nParis\tB-LOC\n", 4, "follows a blank line"),
    (b"IMGID:1\nhi\tO\ncaf\xe9\tO\n", 3, "invalid UTF-8 byte 0xe9 at byte 4"),
    (b"\xef\xbb\xbfIMGID:1\r\nhi\tO\r\n\r\nIMGID:2\r\n\xc3(\tO\r\n", 5, "invalid UTF-8 byte 0xc3"),
    (b"", 1, "no tweets"),
    (b"\n\r\n\n", 1, "no tweets"),
    (b"IMGID:\nhi\tO\n", 1, "empty image id"),
    (b"IMGID:1\nhi\tO\n\nIMGID:a b\nhi\tO\n", 4, "contains whitespace"),
    (b"IMGID:../x\nhi\tO\n", 1, "contains a path separator"),
    (b"IMGID:/etc/passwd\nhi\tO\n", 1, "contains a path separator"),
    (b"IMGID:..\nhi\tO\n", 1, "names a folder"),
    (b"IMGID:a\x00b\nhi\tO\n", 1, "contains a control character"),
    (b"IMGID:" + b"9" * 201 + b"\nhi\tO\n", 1, "longer than 200 bytes"),
    (b"IMGID:1\n\nIMGID:2\nhi\tO\n", 1, "'IMGID:1' is followed by no token lines"),
    (b"IMGID:1\nhi\tO\n\nIMGID:2\n\n", 4, "'IMGID:2' is followed by no token lines"),
    (b"IMGID:1\nhi\tO\nIMGID:2", 3, "'IMGID:2' is followed by no token lines"),
], ids=['no-tab', 'two-tabs', 'unknown-label', 'lowercase-label', 'empty-token',
        'before-imgid', 'after-blank', 'bad-utf8', 'bad-utf8-bom-crlf', 'empty-file',
        'blank-file', 'empty-id', 'space-in-id', 'slash-in-id', 'absolute-id', 'dotdot-id', 'nul-in-id',
        'long-id', 'no-tokens',
        'no-tokens-at-end', 'no-tokens-unterminated'])
def test_malformed_files_name_the_line(tmp_path, data, line, reason):
    path = write_bytes(tmp_path, data)
    with pytest.raises(ConllFormatError) as info:
        read_conll(path)
    error = info.value
    assert (error.path, error.line) == (path, line)
    assert str(error).startswith(f"{path}:{line}: ")
    assert reason in error.reason
    assert isinstance(error, ValueError)


def test_format_error_pickles():
    error = ConllFormatError('a.txt', 3, "unknown label 'X'")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.path, copy.line, copy.reason, str(copy)) == (
        'a.txt', 3, "unknown label 'X'", "a.txt:3: unknown label 'X'")


def test_write_defaults_and_layout_override(tmp_path):
    tweets = [Tweet('1', ['Kill', 'Your', 'Darlings'], ['B-MISC', 'I-MISC', 'I-MISC']),
              Tweet('2', ['hi'], ['O'])]
    write_conll(tweets, tmp_path / 'plain.txt')
    assert (tmp_path / 'plain.txt').read_bytes() == (
        b'IMGID:1\nKill\tB-MISC\nYour\tI-MISC\nDarlings\tI-MISC\n\nIMGID:2\nhi\tO\n\n')

    layout = ConllLayout(newline='\r\n', bom=True, misc_spelling='OTHER', trailing_newlines=1)
    write_conll(tweets, tmp_path / 'custom.txt', layout=layout)
    assert (tmp_path / 'custom.txt').read_bytes() == (
        b'\xef\xbb\xbfIMGID:1\r\nKill\tB-OTHER\r\nYour\tI-OTHER\r\nDarlings\tI-OTHER\r\n'
        b'\r\nIMGID:2\r\nhi\tO\r\n')
    again = read_conll(tmp_path / 'custom.txt')
    assert again == tweets and again.layout == layout


@pytest.mark.parametrize('tweet,reason', [
    (Tweet('1', ['a'], ['B-OTHER']), "unknown label 'B-OTHER'"),
    (Tweet('1', [], []), "no words"),
    (Tweet('1', ['a\tb'], ['O']), "contains a tab or newline"),
    (Tweet('1', ['a\nb'], ['O']), "contains a tab or newline"),
    (Tweet('1', [''], ['O']), "is empty"),
    (Tweet('1', ['IMGID:2'], ['O']), "starts with 'IMGID:'"),
    (Tweet('', ['a'], ['O']), "empty image id"),
    (Tweet('1.jpg x', ['a'], ['O']), "contains whitespace"),
    (Tweet('../1', ['a'], ['O']), "contains a path separator"),
    (Tweet('1', ['\ud800'], ['O']), "lone surrogate"),
    (Tweet('\udcff', ['a'], ['O']), "lone surrogate"),
])
def test_write_rejects_what_would_not_read_back(tmp_path, tweet, reason):
    with pytest.raises(ValueError, match="Cannot write tweet 1") as info:
        write_conll([Tweet('0', ['ok'], ['O']), tweet], tmp_path / 'out.txt')
    assert reason in str(info.value)


def test_write_rejects_no_tweets(tmp_path):
    with pytest.raises(ValueError, match="No tweets to write"):
        write_conll([], tmp_path / 'out.txt')


def test_tweet_and_layout_validation():
    with pytest.raises(ValueError, match="has 2 words but 1 labels"):
        Tweet('1', ['a', 'b'], ['O'])
    with pytest.raises(ValueError, match=r"newline must be .* got '\\r'"):
        ConllLayout(newline='\r')
    with pytest.raises(ValueError, match="misc_spelling must be 'MISC' or 'OTHER', got 'MIS'"):
        ConllLayout(misc_spelling='MIS')
    with pytest.raises(ValueError, match="trailing_newlines must be an int >= 0, got -1"):
        ConllLayout(trailing_newlines=-1)


def test_any_entity_types_read_and_round_trip(tmp_path):
    data = b"IMGID:1\nTake\tO\naspirin\tB-DRUG\nfor\tO\nback\tB-DISEASE\npain\tI-DISEASE\n"
    (tmp_path / 'in.txt').write_bytes(data)
    tweets = read_conll(tmp_path / 'in.txt')
    assert tweets[0].labels == ['O', 'B-DRUG', 'O', 'B-DISEASE', 'I-DISEASE']
    write_conll(tweets, tmp_path / 'out.txt')
    assert (tmp_path / 'out.txt').read_bytes() == data


# -- property-based: any text reads, or fails on a named line ---------------------------------

from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from graphmner.data.labels import BIO_LABELS  # noqa: E402
from graphmner.data.paths import image_id_problem  # noqa: E402

PROPERTIES = settings(max_examples=100, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
SPELLED = list(BIO_LABELS) + ['B-OTHER', 'I-OTHER', 'B-DRUG', 'I-DRUG', 'B-x_1']  # any type reads

image_ids = st.one_of(
    st.from_regex(r'[0-9A-Za-z_]{1,10}', fullmatch=True),
    st.text(st.characters(exclude_categories=('Z', 'C')), min_size=1, max_size=6)  # no space, no control
    .filter(lambda i: image_id_problem(i) is None))
words = st.text(st.characters(exclude_characters='\t\n', exclude_categories=('Cs', )), min_size=1,
                max_size=6).filter(lambda w: not w.startswith('IMGID:'))
tweets = st.integers(1, 4).flatmap(lambda n: st.builds(
    Tweet, image_ids, st.lists(words, min_size=n, max_size=n),
    st.lists(st.sampled_from(BIO_LABELS), min_size=n, max_size=n)))
layouts = st.builds(ConllLayout, newline=st.sampled_from(['\n', '\r\n']), bom=st.booleans(),
                    misc_spelling=st.sampled_from(['MISC', 'OTHER']), trailing_newlines=st.integers(0, 3))
junk = st.one_of(st.text(max_size=8), st.builds(lambda w, label: f'{w}\t{label}', st.text(max_size=4),
                                                st.one_of(st.sampled_from(SPELLED), st.text(max_size=4))),
                 st.sampled_from(['\tO', 'word', 'word\tO\tO', 'word\tB-',  # each fault the reader names
                                  'IMGID:', 'IMGID:a b', 'IMGID:../x']))


@st.composite
def conll_texts(draw):
    """Mostly well-formed files: tweets, with 0-2 blank lines after each, MISC spelled either
    way per line, a line ending per file (sometimes another on one line), a BOM or not; then
    up to two lines inserted, replaced or deleted, and sometimes a byte that is not UTF-8, inside
    the file or at its end."""
    lines = []
    for tweet in draw(st.lists(tweets, max_size=4)):
        lines.append(f'IMGID:{tweet.image_id}')
        for word, label in zip(tweet.words, tweet.labels):
            lines.append(f"{word}\t{label.replace('MISC', draw(st.sampled_from(['MISC', 'OTHER'])))}")
        lines += [''] * draw(st.sampled_from([1, 1, 1, 0, 2]))
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(lines)))
        change = draw(st.sampled_from(['insert', 'replace', 'delete']))
        if change == 'insert' or at == len(lines):
            lines.insert(at, draw(junk))
        elif change == 'replace':
            lines[at] = draw(junk)
        else:
            del lines[at]
    newline = draw(st.sampled_from(['\n', '\r\n']))
    endings = [draw(st.sampled_from([newline] * 9 + ['\r\n' if newline == '\n' else '\n', '\r']))
               for _ in lines]
    text = ''.join(line + ending for line, ending in zip(lines, endings))
    if lines and draw(st.booleans()):
        text = text[:-len(endings[-1])]  # an unterminated last line
    data = ('\ufeff' if draw(st.booleans()) else '').encode('utf-8') + text.encode('utf-8')
    if draw(st.integers(0, 5)) == 0:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + b'\xff' + data[at:]
    return data + draw(st.sampled_from([b''] * 6 + [b'\xff', b'\xc3']))


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp('conll-properties')


def read_quietly(path):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', ConllFormatWarning)
        return read_conll(path)


@PROPERTIES
@given(tweets=st.lists(tweets, min_size=1, max_size=4), layout=layouts)
def test_any_writable_tweets_read_back_and_write_back_byte_for_byte(folder, tweets, layout):
    path = folder / 'written.txt'
    write_conll(tweets, path, layout=layout)
    read = read_quietly(path)
    assert read == tweets
    again = folder / 'again.txt'
    write_conll(read, again)  # the layout read from the file
    assert again.read_bytes() == path.read_bytes()


any_text = st.text(st.characters(), max_size=4)  # lone surrogates included
any_tweets = st.integers(0, 3).flatmap(lambda n: st.builds(
    Tweet, any_text, st.lists(any_text, min_size=n, max_size=n),
    st.lists(st.one_of(st.sampled_from(SPELLED), any_text), min_size=n, max_size=n)))


@PROPERTIES
@given(tweets=st.lists(any_tweets, min_size=1, max_size=3), layout=layouts)
def test_any_tweets_write_and_read_back_or_are_refused_by_name(folder, tweets, layout):
    """The writer's side: tweets built in code (any text, surrogates included) either write
    a file that reads back the same or raise a ValueError naming the tweet."""
    path = folder / 'any-tweets.txt'
    try:
        write_conll(tweets, path, layout=layout)
    except ValueError as error:
        assert str(error).startswith('Cannot write tweet '), error
        return
    assert read_quietly(path) == tweets


def canonical(text: str) -> bool:
    """Whether a file that reads is laid out as write_conll lays it out: one line ending,
    no blank line before the first tweet, exactly one blank line between tweets, one
    spelling of MISC (what the reader's docstring promises a byte round trip for)."""
    text = text.removeprefix('\ufeff')
    crlf = text.count('\r\n')
    if crlf and crlf != text.count('\n'):
        return False
    body = text.replace('\r\n', '\n').rstrip('\n').split('\n')
    blank_runs_ok = all(not (a == b == '') for a, b in zip(body, body[1:]))
    separated = all((a == '') == b.startswith('IMGID:') for a, b in zip(body, body[1:]) if a == '' or
                    b.startswith('IMGID:'))
    spellings = {label.split('-')[-1] for line in body if '\t' in line
                 for label in [line.split('\t')[-1]] if label.endswith(('MISC', 'OTHER'))}
    return body[0] != '' and blank_runs_ok and separated and len(spellings) <= 1


@PROPERTIES
@given(data=conll_texts())
def test_any_text_reads_and_round_trips_or_names_its_line(folder, data):
    path = folder / 'any.txt'
    path.write_bytes(data)
    try:
        tweets = read_quietly(path)
    except ConllFormatError as error:
        event('refused')
        assert str(error).startswith(f'{path}:')
        assert_names_first_faulty_line(read_quietly, folder, data, error)
        return
    written = folder / 'written.txt'
    write_conll(tweets, written)
    assert read_quietly(written) == tweets
    if canonical(data.decode('utf-8')):
        event('read, canonical')
        assert written.read_bytes() == data
    else:
        event('read, not canonical')
        again = folder / 'again.txt'  # what was written is canonical: a fixed point
        write_conll(read_quietly(written), again)
        assert again.read_bytes() == written.read_bytes()


@PROPERTIES
@given(data=st.binary(max_size=64))
def test_any_bytes_read_or_name_their_line(folder, data):
    path = folder / 'bytes.txt'
    path.write_bytes(data)
    try:
        read_quietly(path)
    except ConllFormatError as error:
        assert_names_first_faulty_line(read_quietly, folder, data, error)
