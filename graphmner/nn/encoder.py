r"""The fine-tuned text encoder shared by every method: words in, one vector per
word out.

Tagging is done on words, not subwords (first-subword pooling, as UMT, MAF,
UMGF and ITA all do), so the CRF never sees ``[CLS]``, ``[SEP]`` or ``##``
pieces. An optional second segment (ITA's caption / OCR / tag words) is read in
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
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn


@dataclass
class EncodedBatch:
    """Subword ids of a batch and where each word's first subword sits."""

    input_ids: Tensor        # [B, L] long
    attention_mask: Tensor   # [B, L] long
    token_type_ids: Tensor   # [B, L] long: 0 for [CLS] words [SEP], 1 for the aux segment
    word_index: Tensor       # [B, T] long: position of each word's first subword, 0 for padding
    word_mask: Tensor        # [B, T] bool: real words (prefix mask)
    aux_index: Tensor        # [B, A] long: same for the second segment (A may be 0)
    aux_mask: Tensor         # [B, A] bool
    truncated_words: int     # words that lost their subwords to max_length
    truncated_aux: int       # second-segment words dropped to fit max_length


@dataclass
class EncoderOutput:
    words: Tensor      # [B, T, H] first-subword state of each word (zeros at padding)
    word_mask: Tensor  # [B, T] bool
    aux: Tensor        # [B, A, H] first-subword state of each second-segment word
    aux_mask: Tensor   # [B, A] bool
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


def _prefix_attention(module: nn.Module, query: Tensor, key: Tensor, value: Tensor,
                      attention_mask: Tensor | None, **kwargs):
    """SDPA attention that first prepends ``module.graphmner_prefix`` (a
    ``(key, value)`` pair of shape ``[B, P, H]``) to the keys and values."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    prefix = getattr(module, 'graphmner_prefix', None)
    if prefix is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    (prefix_key, prefix_value), prefix_mask = prefix               # [B, P, H] each, [B, P] bool
    B, heads, L, d = key.shape
    Q = query.shape[2]
    prefix_key, prefix_value = (p.view(B, -1, heads, d).transpose(1, 2) for p in (prefix_key, prefix_value))
    # [B, 1, Q, L] -> [B, 1, Q, P + L]: a query reads the prefix slots its tweet keeps.
    keep = prefix_mask.view(B, 1, 1, -1).expand(B, 1, Q, -1)
    if attention_mask is None:
        text = torch.ones(B, 1, Q, L, dtype=torch.bool, device=key.device)
    elif attention_mask.dtype == torch.bool:
        text = attention_mask.expand(B, 1, Q, L)
    else:  # additive mask: 0 means attend
        text = attention_mask.expand(B, 1, Q, L) == 0
    out, weights = sdpa_attention_forward(
        module, query, torch.cat([prefix_key, key], dim=2), torch.cat([prefix_value, value], dim=2),
        torch.cat([keep, text], dim=-1), **kwargs)                  # out [B, Q, heads, d]
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

    Shapes:
        - **input:** ``words``: B lists of strings; ``aux_words``: B lists
          (possibly empty) or :obj:`None`
        - **output:** :class:`EncoderOutput` with ``words`` :math:`(B, T, H)`,
          ``aux`` :math:`(B, A, H)`, ``pooled`` :math:`(B, H)`
    """

    def __init__(self, name_or_path: str, max_length: int = 128, pooling: str = 'mean',
                 pooler: bool = False):
        super().__init__()
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        if pooling not in ('mean', 'cls'):
            raise ValueError(f"'pooling' must be 'mean' or 'cls' (got '{pooling}')")
        if max_length < 4:
            raise ValueError(f"'max_length' must be at least 4 (got {max_length})")
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
        self.pooling = pooling
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

    def tokenize(self, words: Sequence[Sequence[str]],
                 aux_words: Sequence[Sequence[str]] | None = None) -> EncodedBatch:
        """``[CLS] words [SEP] (aux [SEP])``; the aux segment is cut first."""
        if isinstance(words, (str, bytes)) or any(isinstance(w, str) for w in words):
            raise TypeError("'words' must be a list of word lists, one per tweet "
                            f"(got {type(words).__name__} of {type(words[0]).__name__})")
        if aux_words is not None and len(aux_words) != len(words):
            raise ValueError(f"'aux_words' must have one list per tweet: got {len(aux_words)} for "
                             f"{len(words)} tweets")
        rows, word_pos, aux_pos, first_segment = [], [], [], []
        truncated_words = truncated_aux = 0
        budget = self.max_length
        for b, tweet in enumerate(words):
            pieces = self._word_pieces(tweet)
            aux_pieces = self._word_pieces(aux_words[b]) if aux_words is not None else []
            ids, starts = [self._cls_id], []
            for p in pieces:
                if len(ids) + len(p) > budget - 1:  # keep room for [SEP]
                    break
                starts.append(len(ids))
                ids.extend(p)
            truncated_words += len(pieces) - len(starts)
            ids.append(self._sep_id)
            first_segment.append(len(ids))
            aux_starts: list[int] = []
            if aux_pieces:
                for p in aux_pieces:
                    if len(ids) + len(p) > budget - 1:
                        break
                    aux_starts.append(len(ids))
                    ids.extend(p)
                truncated_aux += len(aux_pieces) - len(aux_starts)
                if aux_starts:
                    ids.append(self._sep_id)
            rows.append(ids)
            # Words cut off by max_length keep a position (the [SEP]) so that they are
            # still tagged and scored: nothing is dropped from evaluation.
            word_pos.append(starts + [starts and len(ids) - 1 or 0] * (len(tweet) - len(starts)))
            aux_pos.append(aux_starts)
        B, L = len(rows), max(len(r) for r in rows)
        T = max((len(t) for t in words), default=0)
        A = max((len(a) for a in aux_pos), default=0)
        input_ids = torch.full((B, L), self._pad_id, dtype=torch.long)
        attention_mask = torch.zeros(B, L, dtype=torch.long)
        token_type_ids = torch.zeros(B, L, dtype=torch.long)
        word_index = torch.zeros(B, T, dtype=torch.long)
        word_mask = torch.zeros(B, T, dtype=torch.bool)
        aux_index = torch.zeros(B, A, dtype=torch.long)
        aux_mask = torch.zeros(B, A, dtype=torch.bool)
        for b, ids in enumerate(rows):
            input_ids[b, :len(ids)] = torch.tensor(ids)
            attention_mask[b, :len(ids)] = 1
            if self._typed_segments:
                token_type_ids[b, first_segment[b]:len(ids)] = 1
            word_index[b, :len(word_pos[b])] = torch.tensor(word_pos[b], dtype=torch.long)
            word_mask[b, :len(word_pos[b])] = True
            aux_index[b, :len(aux_pos[b])] = torch.tensor(aux_pos[b], dtype=torch.long)
            aux_mask[b, :len(aux_pos[b])] = True
        if truncated_words:
            warnings.warn(f'{truncated_words} word(s) did not fit into max_length={self.max_length} '
                          'subwords; they are tagged from the final [SEP] state', stacklevel=3)
        return EncodedBatch(input_ids, attention_mask, token_type_ids, word_index, word_mask, aux_index,
                            aux_mask, truncated_words, truncated_aux)

    # -- forward ---------------------------------------------------------------------
    def forward(self, words: Sequence[Sequence[str]],
                aux_words: Sequence[Sequence[str]] | None = None,
                layer_prefix: Sequence[tuple[Tensor, Tensor]] | None = None,
                prefix_mask: Tensor | None = None,
                encoded: EncodedBatch | None = None) -> EncoderOutput:
        """Word (and aux word) states of a batch of tweets.

        Args:
            words: B lists of words.
            aux_words: B lists of second-segment words, or :obj:`None`.
            layer_prefix: one ``(key, value)`` pair ``[B, P, H]`` per layer.
            prefix_mask: ``[B, P]`` bool, which prefix slots each tweet reads
                (default: all of them).
            encoded: the output of :meth:`tokenize` for these words, to skip it.
        """
        enc = encoded if encoded is not None else self.tokenize(words, aux_words)
        device = next(self.model.parameters()).device
        input_ids = enc.input_ids.to(device)
        attention_mask = enc.attention_mask.to(device)
        if layer_prefix is not None:
            if len(layer_prefix) != self.num_layers:
                raise ValueError(f"'layer_prefix' needs one (key, value) pair per layer: "
                                 f"{self.num_layers} layers, got {len(layer_prefix)}")
            B, P = layer_prefix[0][0].shape[:2]
            if prefix_mask is None:
                prefix_mask = torch.ones(B, P, dtype=torch.bool, device=device)
            if prefix_mask.shape != (B, P) or B != input_ids.shape[0]:
                raise ValueError(f"'prefix_mask' must be [B, P] = [{input_ids.shape[0]}, {P}] for this "
                                 f'batch and prefix, got {tuple(prefix_mask.shape)}')
            for attention, prefix in zip(self._attention, layer_prefix):
                attention.graphmner_prefix = (prefix, prefix_mask.to(device).bool())
        try:
            typed = {'token_type_ids': enc.token_type_ids.to(device)} if self._typed_segments else {}
            outputs = self.model(input_ids=input_ids, attention_mask=attention_mask, **typed)
        finally:
            for attention in self._attention:
                attention.graphmner_prefix = None
        hidden = outputs.last_hidden_state                             # [B, L, H]
        word_mask = enc.word_mask.to(device)
        aux_mask = enc.aux_mask.to(device)
        H = hidden.shape[-1]
        gather = lambda index: hidden.gather(1, index.to(device).unsqueeze(-1).expand(-1, -1, H))
        words_out = gather(enc.word_index) * word_mask.unsqueeze(-1)  # [B, T, H]
        aux_out = gather(enc.aux_index) * aux_mask.unsqueeze(-1)      # [B, A, H]
        if self.pooling == 'cls':
            pooled = hidden[:, 0]
        else:
            m = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1)     # [B, H]
        return EncoderOutput(words_out, word_mask, aux_out, aux_mask, pooled, hidden[:, 0],
                             getattr(outputs, 'pooler_output', None))

    def extra_repr(self) -> str:
        return f"'{self.name_or_path}', max_length={self.max_length}, pooling='{self.pooling}'"
