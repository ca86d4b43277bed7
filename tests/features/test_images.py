import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from graphmner.data.images import PROBLEMS, decode_image, load_image


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width x height`` and holds no pixel data:
    what a decompression-bomb file looks like before decoding.
    """
    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return (struct.pack('>I', len(payload)) + kind + payload +
                struct.pack('>I', crc))

    ihdr = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) +
                     chunk(b'IEND', b''))
    return path


def _photo(size=(48, 32)) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(
        rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def _assert_problem(result, kind):
    assert result.image is None and not result.ok
    assert result.problem == kind, result.detail
    assert kind in PROBLEMS
    assert result.detail


def test_plain_rgb(tmp_path):
    path = tmp_path / 'ok.png'
    _photo().save(path)
    result = load_image(path)
    assert result.ok and result.problem is None
    assert result.image.mode == 'RGB' and result.image.size == (48, 32)


def test_missing_and_none(tmp_path):
    _assert_problem(load_image(None), 'no_image')
    _assert_problem(load_image(tmp_path / 'nope.jpg'), 'missing')
    _assert_problem(load_image(tmp_path), 'missing')  # a directory


def test_zero_bytes(tmp_path):
    path = tmp_path / 'empty.jpg'
    path.write_bytes(b'')
    _assert_problem(load_image(path), 'empty')


def test_text_named_jpg(tmp_path):
    path = tmp_path / 'page.jpg'
    path.write_text('<html><body>404 Not Found</body></html>')
    _assert_problem(load_image(path), 'not_an_image')


def test_truncated_jpeg(tmp_path):
    path = tmp_path / 'full.jpg'
    _photo((64, 64)).save(path, quality=95)
    cut = tmp_path / 'cut.jpg'
    cut.write_bytes(path.read_bytes()[:400])
    result = load_image(cut)
    _assert_problem(result, 'corrupt')
    assert 'cut.jpg' in result.detail


def test_garbage_after_png_header(tmp_path):
    path = tmp_path / 'ok.png'
    _photo().save(path)
    data = bytearray(path.read_bytes())
    data[60:120] = b'\x00' * 60  # inside IDAT
    _assert_problem(decode_image(bytes(data), name='x.png'), 'corrupt')


def test_tiny_image(tmp_path):
    path = tmp_path / 'pixel.png'
    Image.new('RGB', (1, 1)).save(path)
    _assert_problem(load_image(path), 'too_small')
    assert load_image(path, min_size=1).ok


@pytest.mark.parametrize('size', [(9000, 9000), (100_000, 100_000)])
def test_decompression_bomb(tmp_path, size):
    # 81 MP trips our max_pixels; 10^10 px trips Pillow's own bomb check.
    path = _png_header_only(tmp_path / 'bomb.png', *size)
    _assert_problem(load_image(path), 'too_large')


def test_cmyk_jpeg(tmp_path):
    path = tmp_path / 'cmyk.jpg'
    Image.new('CMYK', (16, 16), (0, 255, 255, 0)).save(path)  # red
    result = load_image(path)
    assert result.ok and result.image.mode == 'RGB'
    r, g, b = result.image.getpixel((8, 8))
    assert r > 200 and g < 60 and b < 60


@pytest.mark.parametrize('mode,fill', [('LA', (0, 0)), ('RGBA', (0, 0, 0, 0))])
def test_transparent_becomes_white(tmp_path, mode, fill):
    path = tmp_path / f'{mode}.png'
    Image.new(mode, (16, 16), fill).save(path)
    result = load_image(path)
    assert result.image.mode == 'RGB'
    assert result.image.getpixel((0, 0)) == (255, 255, 255)


def test_palette_with_transparency(tmp_path):
    img = Image.new('P', (16, 16), 1)
    img.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    img.putpixel((0, 0), 0)
    path = tmp_path / 'pal.png'
    img.save(path, transparency=0)
    rgb = load_image(path).image
    assert rgb.getpixel((0, 0)) == (255, 255, 255)
    assert rgb.getpixel((5, 5)) == (10, 20, 30)


def test_sixteen_bit_is_rescaled(tmp_path):
    array = np.full((16, 16), 32896, dtype=np.uint16)  # 128 * 257
    array[0, 0] = 65535
    path = tmp_path / 'deep.png'
    Image.fromarray(array).save(path)
    with Image.open(path) as raw:
        assert raw.mode.startswith('I')
    rgb = load_image(path).image
    assert rgb.getpixel((5, 5)) == (128, 128, 128)
    assert rgb.getpixel((0, 0)) == (255, 255, 255)


def test_exif_orientation_applied(tmp_path):
    img = Image.new('RGB', (40, 20), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 10, 20))  # red band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display turned 90 degrees clockwise
    path = tmp_path / 'rotated.jpg'
    img.save(path, exif=exif, quality=95)
    rgb = load_image(path).image
    assert rgb.size == (20, 40)
    r, _, b = rgb.getpixel((10, 3))  # the band is now along the top
    assert r > 200 and b < 60


def test_bad_options_raise():
    with pytest.raises(ValueError, match='min_size'):
        decode_image(b'x', min_size=0)
