r"""Image-to-text for ITA's auxiliary words: captions, object tags and OCR.

ITA ("ITA: Image-Text Alignments for Multi-Modal Named Entity Recognition",
Wang et al., NAACL 2022) reads an image through text: a caption, the detected
objects' class names and the text printed in the image. Those words become the
graph's ``aux`` nodes (:func:`aux_words`).

Captions are usually precomputed (:func:`read_captions` reads the BLIP-2
captions released with PGIM); :class:`CaptionGenerator` computes them from a
local model. The printed words come from :mod:`graphmner.features.ocr`.
"""
from __future__ import annotations

import codecs
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from PIL import Image

from graphmner.data.conll import ConllFormatError
from graphmner.features.types import AUX_SOURCES

#: ``<image_id>.<ext> :<caption>``; the caption may itself contain colons.
_CAPTION_LINE: Final = re.compile(r'^(?P<file>[^\s:]+)\s*:(?P<caption>.*)$')
_TOKEN: Final = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]")


def read_captions(path: str | os.PathLike) -> dict[str, str]:
    r"""Reads a caption file of ``<image_id>.jpg :<caption>`` lines.

    This is the format of the BLIP-2 captions of Twitter-2015/2017 released
    with PGIM. The image id is the file name's stem (``'17_06_4705'``).
    Captions are stripped; an empty caption is kept as ``''`` (the image was
    captioned, with nothing); blank lines are skipped; a repeated id with the
    same caption is accepted. Lines end at ``\n`` (a ``\r`` before it is
    dropped); a UTF-8 byte-order mark is skipped.

    Args:
        path (str or os.PathLike): The caption file (UTF-8).

    Returns:
        dict[str, str]: Image id -> caption, in file order.

    Raises:
        ConllFormatError: The file is not UTF-8, a line is malformed, or an id
            has two different captions (a :class:`ValueError` whose message
            starts ``path:line:``, as the CoNLL reader's).
        OSError: The file cannot be read.
    """
    raw = Path(path).read_bytes()
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    try:
        text = raw.decode('utf-8')
    except UnicodeDecodeError as err:
        raise ConllFormatError(path, raw.count(b'\n', 0, err.start) + 1,
                               f"invalid UTF-8 byte 0x{raw[err.start]:02x}") from None
    captions: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for lineno, line in enumerate(text.split('\n'), start=1):
        line = line.removesuffix('\r')
        if not line.strip():
            continue
        match = _CAPTION_LINE.match(line)
        if match is None:
            raise ConllFormatError(path, lineno, f"expected '<image_id>.jpg :<caption>', got {line!r}")
        image_id = Path(match['file']).stem
        caption = match['caption'].strip()
        if image_id in captions and captions[image_id] != caption:
            raise ConllFormatError(
                path, lineno, f"image {image_id!r} already has a different caption on line "
                f"{first_line[image_id]} ({captions[image_id]!r} vs {caption!r})")
        captions.setdefault(image_id, caption)
        first_line.setdefault(image_id, lineno)
    return captions


def tokenize(text: str) -> list[str]:
    """Splits text at whitespace and punctuation; punctuation marks are
    kept as tokens of their own, contractions (``don't``) stay whole.
    """
    return _TOKEN.findall(text)


def object_tags(names: Sequence[str]) -> list[str]:
    """Object-tag words: unique class names in detection order, multi-word
    names split into words (``['person', 'cell phone', 'person']`` ->
    ``['person', 'cell', 'phone']``).
    """
    return [word for name in dict.fromkeys(names) for word in name.split()]


def aux_words(
    image_id: str | None,
    *,
    captions: Mapping[str, str] | None = None,
    tags: Sequence[str] | None = None,
    ocr: Mapping[str, str] | None = None,
    order: Sequence[str] = ('caption', 'tag', 'ocr'),
) -> list[tuple[str, str]]:
    r"""The auxiliary words of one tweet, each with its source.

    Args:
        image_id (str, optional): The tweet's image id; :obj:`None` when the
            tweet has no image (captions and OCR are then skipped).
        captions (Mapping[str, str], optional): Image id -> caption, e.g.
            from :func:`read_captions`. (default: :obj:`None`)
        tags (Sequence[str], optional): Class names of this image's detected
            objects (passed through :func:`object_tags`).
            (default: :obj:`None`)
        ocr (Mapping[str, str], optional): Image id -> text read in the
            image. (default: :obj:`None`)
        order (Sequence[str], optional): The sources in reading order, a
            subset of :data:`~graphmner.features.types.AUX_SOURCES`; ITA's
            configs read caption, then tags, then OCR.
            (default: :obj:`('caption', 'tag', 'ocr')`)

    Returns:
        list[tuple[str, str]]: ``(word, source)`` pairs in reading order.
    """
    unknown = [s for s in order if s not in AUX_SOURCES]
    if unknown or len(set(order)) != len(order):
        raise ValueError(f"'order' must list distinct sources from "
                         f"{AUX_SOURCES} (got {tuple(order)})")
    words: dict[str, list[str]] = {
        'caption': tokenize(captions.get(image_id, ''))
        if captions is not None and image_id is not None else [],
        'ocr': tokenize(ocr.get(image_id, ''))
        if ocr is not None and image_id is not None else [],
        'tag': object_tags(tags) if tags is not None else [],
    }
    return [(word, source) for source in order for word in words[source]]


class CaptionGenerator:
    r"""Captions images with a local Hugging Face image-to-text model.

    Any checkpoint that ``AutoModelForImageTextToText`` loads works (BLIP,
    BLIP-2, GIT, vision-encoder-decoder, ...). transformers 5 has no
    ``image-to-text`` pipeline any more, so the processor and ``generate``
    are called directly. Files are read with ``local_files_only=True``:
    nothing is downloaded.

    Args:
        model (str or os.PathLike): Directory of the saved model and its
            processor.
        device (str, optional): Where the model runs. (default: :obj:`'cpu'`)
        prompt (str, optional): Text the caption continues, for models that
            take one (e.g. ``'a photo of'``). (default: :obj:`None`)
        max_new_tokens (int, optional): Caption length limit.
            (default: :obj:`30`)

    Raises:
        ValueError: ``model`` is :obj:`None`.
        FileNotFoundError: ``model`` is not a directory.
    """

    def __init__(self, model: str | os.PathLike | None, *,
                 device: str = 'cpu', prompt: str | None = None,
                 max_new_tokens: int = 30):
        if model is None:
            raise ValueError(
                "CaptionGenerator needs a local model directory: set "
                "CaptionGenerator(model=...) (--caption-model), e.g. a saved "
                "Salesforce/blip2-opt-2.7b; or use precomputed captions with "
                "read_captions()")
        path = Path(model).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(
                f"CaptionGenerator(model=...) (--caption-model) is "
                f"{str(model)!r}, and '{path.resolve()}' is not a directory. "
                f"Nothing is downloaded automatically: save the model and "
                f"its processor there with save_pretrained().")
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.processor = AutoProcessor.from_pretrained(path,
                                                       local_files_only=True)
        self.model = AutoModelForImageTextToText.from_pretrained(
            path, local_files_only=True).to(device).eval()
        self.device = device
        self.prompt = prompt
        self.max_new_tokens = max_new_tokens

    def __call__(self, images: Sequence[Image.Image]) -> list[str]:
        """One caption per image, generated as one batch."""
        import torch

        if not images:
            return []
        kwargs = {'images': list(images), 'return_tensors': 'pt'}
        if self.prompt is not None:
            kwargs['text'] = [self.prompt] * len(images)
        inputs = self.processor(**kwargs).to(self.device)
        with torch.inference_mode():
            ids = self.model.generate(**inputs,
                                      max_new_tokens=self.max_new_tokens)
        texts = self.processor.batch_decode(ids, skip_special_tokens=True)
        return [t.strip() for t in texts]
