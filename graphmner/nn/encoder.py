r"""The fine-tuned text encoder shared by every method: words in, one vector per
word out.

By default tagging is done on words, not subwords (first-subword pooling),
so the CRF never sees ``[CLS]``, ``[SEP]`` or ``##`` pieces. Of the official
codes only ITA's (flair, ``pooling_operation='first'``) does the same; UMT,
MAF, UMGF and HVPNeT (GMF's closest code) fuse and tag every subword, with
``X`` labels on continuation pieces and labels of their own on ``[CLS]`` /
``[SEP]``, and score only each word's first subword. ``subword_states=True``
gives that unit: one state per subword piece of every word, in order (the
models' ``tagging_unit='subword'``, see :mod:`graphmner.nn.subword`).

An optional second segment (ITA's caption / OCR / tag words) is read in
the same sequence after a separator and pooled the same way; when the input is
too long the second segment is truncated first, and a tweet's own words only
when nothing else is left.

Per-layer prefix keys/values (GMF's visual clue guidance, after HVPNeT) are
injected by :meth:`TextEncoder.forward` ``layer_prefix``: a list with one
``(key, value)`` pair of shape ``[B, P, H]`` per layer, prepended to that
layer's self-attention keys and values, while queries stay text-only.
``prefix_mask`` says which prefix slots each tweet attends to: a tweet whose
row is all :obj:`False` (no usable image) attends to no prefix at all and gets
the word states of a prefix-free pass.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn


@dataclass
class EncodedBatch:
    """Subword rows of a batch (one per window: a tweet that fits is one row)
    and where each word's first subword sits."""

    input_ids: Tensor        # [R, L] long, R >= B rows: a tweet over max_length has several windows
    attention_mask: Tensor   # [R, L] long
    token_type_ids: Tensor   # [R, L] long: 0 for [CLS] words [SEP], 1 for the aux segment
    row_tweet: Tensor        # [R] long: the tweet each row (window) belongs to, ascending
    word_row: Tensor         # [B, T] long: the row each word's state is read from, 0 for padding
    word_index: Tensor       # [B, T] long: position of each word's first subword in that row
    word_mask: Tensor        # [B, T] bool: real words (prefix mask); T pieces with subword_states
    aux_row: Tensor          # [B, A] long: same for the second segment (A may be 0)
    aux_index: Tensor        # [B, A] long
    aux_mask: Tensor         # [B, A] bool
    truncated_aux: int       # second-segment words no row had room for


@dataclass
class EncoderOutput:
    words: Tensor      # [B, T, H] first-subword state of each word (zeros at padding)
    word_mask: Tensor  # [B, T] bool
    aux: Tensor        # [B, A, H] first-subword state of each second-segment word
    aux_mask: Tensor   # [B, A] bool
    # The sentence vectors of a tweet read in several windows are the mean over its windows.
    pooled: Tensor     # [B, H] sentence vector (see ``pooling``)
    cls: Tensor        # [B, H] the first token's ([CLS]) final state
    pooler_output: Tensor | None = None  # [B, H] tanh(W cls), with ``pooler=True``


def resolve_encoder_path(name_or_path: str) -> str:
    """Return ``name_or_path`` unchanged if it is a local folder, and otherwise
    make sure a hub name can only come from the local cache when the hub is
    off, with an error naming the option instead of a failed download."""
    if Path(name_or_path).expanduser().is_dir():
        return str(Path(name_or_path).expanduser())
    if Path(name_or_path).expanduser().exists():
        raise ValueError(f"The text encoder must be a model folder or a hub name, got the file "
                         f"'{name_or_path}' (set --encoder)")
    return name_or_path


_WEIGHTS_LOADED_LATER: ContextVar[bool] = ContextVar('graphmner_encoder_weights_loaded_later', default=False)


@contextmanager
def weights_loaded_later() -> Iterator[None]:
    """Inside the block a :class:`TextEncoder` builds its network from the folder's config and
    tokenizer alone, with untrained weights: for rebuilding a saved model whose state dict (the
    fine-tuned encoder included) is loaded next, from a folder that holds no encoder weights (a
    model folder's ``encoder/``). Never for training: outside the block the weights are required."""
    token = _WEIGHTS_LOADED_LATER.set(True)
    try:
        yield
    finally:
        _WEIGHTS_LOADED_LATER.reset(token)


PREFIX_ATTENTION = 'graphmner_prefix'


def _attention_weights(query: Tensor, key: Tensor, allowed: Tensor, scaling: float | None) -> Tensor:
    """The softmax weights SDPA applies (``[B, heads, Q, K]``, detached), for
    :meth:`TextEncoder.recording_attention`: SDPA itself returns none."""
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    score = (query @ key.transpose(-1, -2)) * scaling
    return score.masked_fill(~allowed, float('-inf')).softmax(-1).detach()


def _prefix_attention(module: nn.Module, query: Tensor, key: Tensor, value: Tensor,
                      attention_mask: Tensor | None, **kwargs):
    """SDPA attention that first prepends ``module.graphmner_prefix`` (a
    ``(key, value)`` pair of shape ``[B, P, H]``) to the keys and values."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    prefix = getattr(module, 'graphmner_prefix', None)
    record = getattr(module, 'graphmner_record', None)
    B, heads, L, d = key.shape
    Q = query.shape[2]
    if attention_mask is None:
        text = torch.ones(B, 1, Q, L, dtype=torch.bool, device=key.device)
    elif attention_mask.dtype == torch.bool:
        text = attention_mask.expand(B, 1, Q, L)
    else:  # additive mask: 0 means attend
        text = attention_mask.expand(B, 1, Q, L) == 0
    if prefix is None:
        if record is not None:
            record.append(_attention_weights(query, key, text, kwargs.get('scaling')))
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    (prefix_key, prefix_value), prefix_mask = prefix               # [B, P, H] each, [B, P] bool
    prefix_key, prefix_value = (p.view(B, -1, heads, d).transpose(1, 2) for p in (prefix_key, prefix_value))
    # [B, 1, Q, L] -> [B, 1, Q, P + L]: a query reads the prefix slots its tweet keeps.
    keep = prefix_mask.view(B, 1, 1, -1).expand(B, 1, Q, -1)
    keys, allowed = torch.cat([prefix_key, key], dim=2), torch.cat([keep, text], dim=-1)
    if record is not None:
        record.append(_attention_weights(query, keys, allowed, kwargs.get('scaling')))
    out, weights = sdpa_attention_forward(
        module, query, keys, torch.cat([prefix_value, value], dim=2), allowed, **kwargs)  # [B, Q, heads, d]
    without = ~prefix_mask.any(-1)
    if without.any():
        # Tweets that read no prefix are computed without one, so their states equal a
        # prefix-free pass exactly (not merely up to the rounding of a longer softmax).
        rows = without.nonzero().view(-1)
        plain, _ = sdpa_attention_forward(
            module, query[rows], key[rows], value[rows],
            attention_mask[rows] if attention_mask is not None else None, **kwargs)
        out = out.index_copy(0, rows, plain)
    return out, weights


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Loading a checkpoint prints a progress bar and a "LOAD REPORT" of keys the
    model does not use (the pooler of a checkpoint loaded without one): noise
    on every model build, so it is off while loading."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()


def _register_prefix_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(PREFIX_ATTENTION, _prefix_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(PREFIX_ATTENTION, sdpa_mask)


class TextEncoder(nn.Module):
    r"""A Hugging Face encoder (BERT, RoBERTa, MiniLM, ...) that returns one
    vector per word by first-subword pooling.

    A tweet whose words do not fit into ``max_length`` subwords is read in
    overlapping windows, as the transformers token-classification pipeline
    does with a ``stride``: each window is ``[CLS] words [SEP]`` of at most
    ``max_length`` subwords, starts on a word boundary and shares about
    ``window_overlap`` subwords with the previous one, and each word takes its
    state from the window in which it has the most context (is farthest from a
    cut; the text's own ends are not cuts). So no word is read from ``[SEP]``
    and training, evaluation and prediction all see every word in context. A
    single word longer than a window keeps its first ``max_length - 2``
    subwords (its first subword is its state). The tweet's words always come
    first: the aux segment (ITA) goes with every window in the room that
    window's words leave, cut as in a tweet that fits (in practice only a
    short last window has room), and each aux word's state comes from the
    window that read the most aux words. A per-layer prefix (GMF) is read by
    every window of its tweet. The sentence vectors (``pooled``, ``cls``,
    ``pooler_output``) of a tweet in several windows are the mean of its
    windows' vectors. A tweet that fits is one window: exactly the states of
    a plain forward pass.

    Args:
        name_or_path (str): a hub name (read from the local cache only when
            ``HF_HUB_OFFLINE=1``) or a local model folder.
        max_length (int, optional): subword budget including special tokens.
            (default: :obj:`128`)
        pooling (str, optional): sentence vector: ``'mean'`` over real subwords or
            ``'cls'`` (the first token's state). (default: :obj:`'mean'`)
        pooler (bool, optional): also return ``pooler_output = tanh(W [CLS])``,
            the pooler of BERT-style checkpoints (MAF's and GMF's text vector),
            loaded from the checkpoint where it has one and freshly initialised
            (with a log line) where not. (default: :obj:`False`)
        window_overlap (int, optional): subwords consecutive windows of a
            long tweet share at most (whole words only), from 0 to
            ``(max_length - 2) // 2``; :obj:`None` takes a quarter of a
            window. (default: :obj:`None`)
        subword_states (bool, optional): return a state for every subword
            piece of each word (its pieces in order, all read from the window
            that holds the word), not only for its first piece; a word's piece
            count is :meth:`pieces_per_word`'s. (default: :obj:`False`)

    Shapes:
        - **input:** ``words``: B lists of strings; ``aux_words``: B lists
          (possibly empty) or :obj:`None`
        - **output:** :class:`EncoderOutput` with ``words`` :math:`(B, T, H)`
          (T words, or T pieces with ``subword_states``), ``aux`` :math:`(B, A, H)`,
          ``pooled`` :math:`(B, H)`
    """

    def __init__(self, name_or_path: str, max_length: int = 128, pooling: str = 'mean',
                 pooler: bool = False, window_overlap: int | None = None, subword_states: bool = False):
        super().__init__()
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        if pooling not in ('mean', 'cls'):
            raise ValueError(f"'pooling' must be 'mean' or 'cls' (got '{pooling}')")
        if max_length < 4:
            raise ValueError(f"'max_length' must be at least 4 (got {max_length})")
        if window_overlap is None:
            window_overlap = (max_length - 2) // 4
        if not 0 <= window_overlap <= (max_length - 2) // 2:
            raise ValueError(f"'window_overlap' must be between 0 and (max_length - 2) // 2 = "
                             f"{(max_length - 2) // 2} subwords (got {window_overlap})")
        path = resolve_encoder_path(name_or_path)
        offline = os.environ.get('HF_HUB_OFFLINE') == '1'
        try:
            with _quiet_transformers():
                self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=offline)
                if _WEIGHTS_LOADED_LATER.get():
                    config = AutoConfig.from_pretrained(path, local_files_only=offline)
                    self.model = AutoModel.from_config(config, add_pooling_layer=pooler, dtype=config.dtype)
                    loading = {}
                else:
                    self.model, loading = AutoModel.from_pretrained(
                        path, local_files_only=offline, add_pooling_layer=pooler, output_loading_info=True)
        except OSError as error:
            raise OSError(f"Cannot load the text encoder '{name_or_path}': give a local model folder "
                          f"with --encoder (e.g. ../shared/models/all-MiniLM-L6-v2). {error}") from error
        if not self.tokenizer.is_fast:
            raise ValueError(f"The encoder '{name_or_path}' has no fast tokenizer; one is needed")
        self.name_or_path = name_or_path
        self.max_length = max_length
        self.window_overlap = window_overlap
        self.pooling = pooling
        self.subword_states = subword_states
        if pooler and getattr(self.model, 'pooler', None) is None:
            raise ValueError(f"The encoder '{name_or_path}' has no [CLS] pooler (pooler=True needs a "
                             'BERT-style model)')
        if pooler and any('pooler' in key for key in loading.get('missing_keys', ())):
            logging.getLogger(__name__).info("'%s' has no pretrained pooler: it starts from random "
                                             'weights', name_or_path)
        # Encoders with token types read the second (aux) segment as type 1, as in pre-training.
        self._typed_segments = getattr(self.model.config, 'type_vocab_size', 1) > 1
        cls_id = self.tokenizer.cls_token_id
        sep_id = self.tokenizer.sep_token_id
        self._cls_id = cls_id if cls_id is not None else self.tokenizer.bos_token_id
        self._sep_id = sep_id if sep_id is not None else self.tokenizer.eos_token_id
        self._unk_id = self.tokenizer.unk_token_id
        self._pad_id = self.tokenizer.pad_token_id or 0
        self._pieces: dict[str, list[int]] = {}  # word -> subword ids; tweets repeat words a lot
        self._attention = self._self_attention_layers()
        _register_prefix_attention()
        self.model.config._attn_implementation = PREFIX_ATTENTION

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    @property
    def num_layers(self) -> int:
        return self.model.config.num_hidden_layers

    @property
    def num_heads(self) -> int:
        return self.model.config.num_attention_heads

    def _self_attention_layers(self) -> list[nn.Module]:
        layers = [m for name, m in self.model.named_modules()
                  if name.endswith('attention.self') and hasattr(m, 'key') and hasattr(m, 'value')]
        if len(layers) != self.num_layers:
            raise ValueError(f"Expected one BERT-style self-attention (with 'key' and 'value') per "
                             f"layer in '{self.name_or_path}': found {len(layers)} for "
                             f"{self.num_layers} layers")
        return layers

    @contextmanager
    def recording_attention(self) -> Iterator[list[Tensor]]:
        """Inside the block, every forward appends each layer's self-attention
        weights to the list yielded: ``[B, heads, L, P + L]`` per layer (the
        ``P`` prefix slots first, where a prefix is given), each query's row
        summing to one over the keys it reads."""
        record: list[Tensor] = []
        for attention in self._attention:
            attention.graphmner_record = record
        try:
            yield record
        finally:
            for attention in self._attention:
                attention.graphmner_record = None

    # -- tokenisation ---------------------------------------------------------------
    def _word_pieces(self, words: Sequence[str]) -> list[list[int]]:
        new = [w for w in dict.fromkeys(words) if w not in self._pieces]
        if new:
            ids = self.tokenizer(new, add_special_tokens=False)['input_ids']
            for word, pieces in zip(new, ids):
                # Some characters (control, zero-width) tokenise to nothing; the
                # word still needs a position to be tagged.
                self._pieces[word] = pieces or [self._unk_id]
        return [self._pieces[w] for w in words]

    def pieces_per_word(self, words: Sequence[str]) -> list[int]:
        """How many subword pieces of each word the encoder reads (a word longer
        than a window keeps its first ``max_length - 2``): the states each word
        gets with ``subword_states``."""
        return [min(len(p), self.max_length - 2) for p in self._word_pieces(words)]

    def windows(self, lengths: Sequence[int]) -> list[tuple[int, int]]:
        """Word ranges ``(start, end)`` of the windows of a tweet whose words have
        ``lengths`` subwords (each at most ``max_length - 2``): one range when
        they fit, else greedy full windows on word boundaries, each starting
        where the shared words reach ``window_overlap`` subwords."""
        width, n = self.max_length - 2, len(lengths)
        spans, start = [], 0
        while True:
            end, used = start, 0
            while end < n and used + lengths[end] <= width:
                used += lengths[end]
                end += 1
            spans.append((start, end))
            if end == n:
                return spans
            # Back off from the end while the shared words fit the overlap, but always
            # advance by one word at least.
            next_start, shared = end, 0
            while next_start - 1 > start and shared + lengths[next_start - 1] <= self.window_overlap:
                next_start -= 1
                shared += lengths[next_start]
            start = next_start

    @staticmethod
    def _best_window(spans: Sequence[tuple[int, int]], offsets: Sequence[int]) -> list[int]:
        """For each word, the window (index into ``spans``) in which it is farthest,
        in subwords, from a cut; ``offsets[i]`` is where word ``i`` starts."""
        n = len(offsets) - 1
        best, most = [0] * n, [-1.0] * n
        for w, (start, end) in enumerate(spans):
            for i in range(start, end):
                left = offsets[i] - offsets[start] if start > 0 else float('inf')
                right = offsets[end] - offsets[i + 1] if end < n else float('inf')
                if min(left, right) > most[i]:  # ties: the earlier window
                    best[i], most[i] = w, min(left, right)
        return best

    def _row(self, pieces: Sequence[Sequence[int]], aux_pieces: Sequence[Sequence[int]]):
        """``[CLS] words [SEP] (aux [SEP])`` with the aux words that fit: the ids,
        where the aux segment starts, and each word's and aux word's position."""
        ids, starts = [self._cls_id], []
        for p in pieces:
            starts.append(len(ids))
            ids.extend(p)
        ids.append(self._sep_id)
        first_segment = len(ids)
        aux_starts: list[int] = []
        for p in aux_pieces:
            if len(ids) + len(p) > self.max_length - 1:  # keep room for [SEP]
                break
            aux_starts.append(len(ids))
            ids.extend(p)
        if aux_starts:
            ids.append(self._sep_id)
        return ids, first_segment, starts, aux_starts

    def tokenize(self, words: Sequence[Sequence[str]],
                 aux_words: Sequence[Sequence[str]] | None = None,
                 subword_states: bool | None = None) -> EncodedBatch:
        """``[CLS] words [SEP] (aux [SEP])`` per window (see the class); the aux
        segment is cut first. ``subword_states`` (default: the encoder's) places
        every piece of each word, not only its first."""
        every_piece = self.subword_states if subword_states is None else subword_states
        if isinstance(words, (str, bytes)) or any(isinstance(w, str) for w in words):
            raise TypeError("'words' must be a list of word lists, one per tweet "
                            f"(got {type(words).__name__} of {type(words[0]).__name__})")
        if aux_words is not None and len(aux_words) != len(words):
            raise ValueError(f"'aux_words' must have one list per tweet: got {len(aux_words)} for "
                             f"{len(words)} tweets")
        rows, row_tweet, first_segment = [], [], []
        word_place, aux_place = [], []  # per tweet: (row, position) of each word / aux word
        truncated_aux = 0
        width = self.max_length - 2
        for b, tweet in enumerate(words):
            pieces = [p[:width] for p in self._word_pieces(tweet)]
            aux_pieces = self._word_pieces(aux_words[b]) if aux_words is not None else []
            lengths = [len(p) for p in pieces]
            spans = self.windows(lengths)
            offsets = [0]
            for n in lengths:
                offsets.append(offsets[-1] + n)
            built = [self._row(pieces[start:end], aux_pieces) for start, end in spans]
            first_row = len(rows)
            for ids, first, _, _ in built:
                rows.append(ids)
                row_tweet.append(b)
                first_segment.append(first)
            # each word's first piece (with subword_states, each of its pieces) in its best window
            word_place.append([(first_row + w, built[w][2][i - spans[w][0]] + k)
                               for i, w in enumerate(self._best_window(spans, offsets))
                               for k in range(lengths[i] if every_piece else 1)])
            most = max(range(len(built)), key=lambda w: len(built[w][3]))
            aux_place.append([(first_row + most, pos) for pos in built[most][3]])
            truncated_aux += len(aux_pieces) - len(built[most][3])
        R, B, L = len(rows), len(words), max(len(r) for r in rows)
        T = max((len(t) for t in word_place), default=0)
        A = max((len(a) for a in aux_place), default=0)
        input_ids = torch.full((R, L), self._pad_id, dtype=torch.long)
        attention_mask = torch.zeros(R, L, dtype=torch.long)
        token_type_ids = torch.zeros(R, L, dtype=torch.long)
        for r, ids in enumerate(rows):
            input_ids[r, :len(ids)] = torch.tensor(ids)
            attention_mask[r, :len(ids)] = 1
            if self._typed_segments:
                token_type_ids[r, first_segment[r]:len(ids)] = 1

        def places(per_tweet: list[list[tuple[int, int]]], width: int) -> tuple[Tensor, Tensor, Tensor]:
            row = torch.zeros(B, width, dtype=torch.long)
            index = torch.zeros(B, width, dtype=torch.long)
            mask = torch.zeros(B, width, dtype=torch.bool)
            for b, place in enumerate(per_tweet):
                if place:
                    row[b, :len(place)], index[b, :len(place)] = torch.tensor(place, dtype=torch.long).T
                    mask[b, :len(place)] = True
            return row, index, mask

        return EncodedBatch(input_ids, attention_mask, token_type_ids,
                            torch.tensor(row_tweet, dtype=torch.long), *places(word_place, T),
                            *places(aux_place, A), truncated_aux)

    # -- forward ---------------------------------------------------------------------
    def forward(self, words: Sequence[Sequence[str]],
                aux_words: Sequence[Sequence[str]] | None = None,
                layer_prefix: Sequence[tuple[Tensor, Tensor]] | None = None,
                prefix_mask: Tensor | None = None,
                encoded: EncodedBatch | None = None,
                subword_states: bool | None = None) -> EncoderOutput:
        """Word (and aux word) states of a batch of tweets.

        Args:
            words: B lists of words.
            aux_words: B lists of second-segment words, or :obj:`None`.
            layer_prefix: one ``(key, value)`` pair ``[B, P, H]`` per layer.
            prefix_mask: ``[B, P]`` bool, which prefix slots each tweet reads
                (default: all of them).
            encoded: the output of :meth:`tokenize` for these words, to skip it.
            subword_states: a state for every piece (:obj:`None`: the encoder's
                ``subword_states``; an aux reader reads words: :obj:`False`).
        """
        enc = encoded if encoded is not None else self.tokenize(words, aux_words, subword_states)
        device = next(self.model.parameters()).device
        input_ids = enc.input_ids.to(device)
        attention_mask = enc.attention_mask.to(device)
        B, R = enc.word_mask.shape[0], input_ids.shape[0]
        windowed = R != B
        row_tweet = enc.row_tweet.to(device)
        if layer_prefix is not None:
            if len(layer_prefix) != self.num_layers:
                raise ValueError(f"'layer_prefix' needs one (key, value) pair per layer: "
                                 f"{self.num_layers} layers, got {len(layer_prefix)}")
            P = layer_prefix[0][0].shape[1]
            if prefix_mask is None:
                prefix_mask = torch.ones(B, P, dtype=torch.bool, device=device)
            if prefix_mask.shape != (B, P) or layer_prefix[0][0].shape[0] != B:
                raise ValueError(f"'prefix_mask' must be [B, P] = [{B}, {P}] for this "
                                 f'batch and prefix, got {tuple(prefix_mask.shape)}')
            prefix_mask = prefix_mask.to(device).bool()
            if windowed:  # every window reads its tweet's prefix: [B, P, H] -> [R, P, H]
                layer_prefix = [(key[row_tweet], value[row_tweet]) for key, value in layer_prefix]
                prefix_mask = prefix_mask[row_tweet]
            for attention, prefix in zip(self._attention, layer_prefix):
                attention.graphmner_prefix = (prefix, prefix_mask)
        try:
            typed = {'token_type_ids': enc.token_type_ids.to(device)} if self._typed_segments else {}
            outputs = self.model(input_ids=input_ids, attention_mask=attention_mask, **typed)
        finally:
            for attention in self._attention:
                attention.graphmner_prefix = None
        hidden = outputs.last_hidden_state                             # [R, L, H]
        word_mask = enc.word_mask.to(device)
        aux_mask = enc.aux_mask.to(device)
        L, H = hidden.shape[1:]
        flat = hidden.reshape(R * L, H)
        gather = lambda row, index: flat[(row * L + index).to(device)]
        words_out = gather(enc.word_row, enc.word_index) * word_mask.unsqueeze(-1)  # [B, T, H]
        aux_out = gather(enc.aux_row, enc.aux_index) * aux_mask.unsqueeze(-1)       # [B, A, H]
        if self.pooling == 'cls':
            pooled = hidden[:, 0]
        else:
            m = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1)     # [R, H]
        cls, pooler_output = hidden[:, 0], getattr(outputs, 'pooler_output', None)
        if windowed:  # [R, H] -> [B, H]: the mean over each tweet's windows
            count = torch.bincount(row_tweet, minlength=B).unsqueeze(-1).to(hidden.dtype)
            mean = lambda v: v.new_zeros(B, v.shape[-1]).index_add_(0, row_tweet, v) / count
            pooled, cls = mean(pooled), mean(cls)
            pooler_output = mean(pooler_output) if pooler_output is not None else None
        return EncoderOutput(words_out, word_mask, aux_out, aux_mask, pooled, cls, pooler_output)

    def extra_repr(self) -> str:
        return (f"'{self.name_or_path}', max_length={self.max_length}, "
                f"window_overlap={self.window_overlap}, pooling='{self.pooling}'")
