"""ITA: image-text alignments for multimodal NER (Wang et al., NAACL 2022).

The image is turned into text (aux words: object tags = LA, captions = GA,
OCR = OCA) and read with the tweet as one sequence ``[CLS] words [SEP] aux [SEP]``
(image-text view); only the word positions reach the CRF. The same encoder reads
the words alone (text-only view). Cross-view alignment (CVA) distils the
tempered CRF token marginals of the image-text view (teacher, detached) into the
text-only view (student): ``T^2 * sum_tokens KL(p_it || p_text) / B``.

Training loss (our in-batch equivalent of the official code's concatenation of
the text-only corpus and the doc corpus, each tweet seen once per view):
``NLL_text + (1-r) * NLL_image_text + r * CVA`` for tweets with aux words,
``NLL_text`` for tweets without.

Both views tag in BIOES, as the official code does (``tag_to_bioes``); the
marginals CVA aligns are over BIOES tags, and predictions come back as BIO.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch

from ..data.labels import BIO_LABELS
from ..graph import schema
from .base import EncoderConfig, MNERModel, MNEROutput


def cross_view_kl(teacher_log_marginals: Tensor, student_log_marginals: Tensor,
                  mask: Tensor, temperature: float = 1.0) -> Tensor:
    r"""``T^2 * sum_{b,t in mask} KL(p_teacher || p_student) / B``; inputs are
    (already tempered) log marginals ``(B, T, C)``; the teacher is detached."""
    t = teacher_log_marginals.detach()
    kl = (t.exp() * (t - student_log_marginals)).sum(-1)  # [B, T]
    kl = kl.masked_fill(~mask.bool(), 0.0)
    return temperature ** 2 * kl.sum() / max(t.shape[0], 1)


VIEWS = ('image-text', 'text')


@dataclass
class ITAConfig(EncoderConfig):
    """ITA settings (official code's values: KB-NER ITA configs)."""

    # Aux words read, in this order: 'tag' = LA (object tags), 'caption' = GA,
    # 'ocr' = OCA; all three = ITA-All.
    aux_sources: list = field(default_factory=lambda: ['caption'])
    cva: bool = True              # cross-view alignment on (else both views train on NLL only)
    temperature: float = 2.0      # T of the tempered marginals (Twitter-2015: 4, Twitter-2017: 2)
    cva_weight: float = 0.5       # r: (1 - r) * NLL_image_text + r * CVA
    inference_view: str = 'auto'  # 'auto' (image-text when a tweet has aux words), 'image-text', 'text'
    tag_scheme: str = 'bioes'     # the official code converts both corpora to BIOES (tag_to_bioes)


class ITA(MNERModel):
    r"""ITA: the image as text, read beside the tweet, aligned across views.

    Args:
        config (ITAConfig): encoder, aux sources, CVA temperature and weight, view.
        labels (Sequence[str], optional): BIO labels in id order. (default: :obj:`BIO_LABELS`)

    Shapes:
        - **input:** a :class:`~torch_geometric.data.Batch` of B tweet graphs with
          ``words``, ``aux_words`` and ``aux.source``
        - **output:** emissions :math:`(B, T, C)` over the T words of the longest
          tweet (aux positions never reach the CRF)
    """

    name = 'ita'
    config_class = ITAConfig
    relations = (schema.WORD_NEXT, schema.AUX_NEXT, schema.DESCRIBES)
    #: The views ``run.py`` scores separately (the paper reports both).
    views = VIEWS

    def __init__(self, config: ITAConfig, labels: Sequence[str] = BIO_LABELS):
        super().__init__(config, labels)
        if config.inference_view not in ('auto', *VIEWS):
            raise ValueError(f"ITAConfig.inference_view must be 'auto', 'image-text' or 'text', "
                             f"got {config.inference_view!r}")
        unknown = set(config.aux_sources) - set(schema.AUX_SOURCES)
        if unknown:
            raise ValueError(f"Unknown aux_sources {sorted(unknown)}; expected {schema.AUX_SOURCES}")
        self.dropout = nn.Dropout(config.dropout)
        self.emission = nn.Linear(self.encoder.hidden_size, len(self.tags))

    def aux_of(self, batch: Batch) -> list[list[str]]:
        """Aux words per tweet, restricted to and ordered by ``aux_sources``."""
        sources: list[list[int]] = [[] for _ in range(batch.num_graphs)]
        for source, graph in zip(batch[schema.AUX].source.tolist(), batch[schema.AUX].batch.tolist()):
            sources[graph].append(source)
        order = [schema.AUX_SOURCES.index(s) for s in self.config.aux_sources]
        return [[word for o in order for word, s in zip(words, graph_sources) if s == o]
                for words, graph_sources in zip(batch.aux_words, sources)]

    @contextmanager
    def inference(self, view: str) -> Iterator[None]:
        """Decode with ``view`` ('image-text' or 'text') inside the block."""
        if view not in VIEWS:
            raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
        kept = self.config.inference_view
        self.config.inference_view = view
        try:
            yield
        finally:
            self.config.inference_view = kept

    def _view(self, words, aux):
        enc = self.encoder.tokenize(words, aux)
        out = self.encoder(words, aux, encoded=enc)
        return self.emission(self.dropout(out.words)), out.word_mask, enc

    def forward(self, batch: Batch) -> MNEROutput:
        words, aux = self.words_of(batch), self.aux_of(batch)
        view = self.config.inference_view
        if view == 'text' or (view == 'auto' and not any(aux)):
            emissions, mask, enc = self._view(words, None)
        else:
            emissions, mask, enc = self._view(words, aux)
        return self.crf_output(batch, emissions, mask)

    def loss(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        tags = self.target_tags(batch)
        if tags is None:
            raise ValueError("The batch has no word labels ('word.y'); cannot compute a loss")
        words, aux = self.words_of(batch), self.aux_of(batch)
        e_t, m_t, _ = self._view(words, None)
        tags = tags[:, :e_t.shape[1]].to(e_t.device)
        nll_text = self.crf.nll(e_t, tags, m_t)
        loss, parts = nll_text, {'nll_text': float(nll_text.detach())}
        has = [i for i, a in enumerate(aux) if a]
        if has:
            idx = torch.tensor(has, device=e_t.device)
            e_i, m_i, enc = self._view([words[i] for i in has], [aux[i] for i in has])
            nll_it = self.crf.nll(e_i, tags[idx, :e_i.shape[1]], m_i)
            r, T = self.config.cva_weight, self.config.temperature
            if self.config.cva:
                teacher = self.crf.log_marginals(e_i.detach(), m_i, temperature=T)
                student = self.crf.log_marginals(e_t[idx, :e_i.shape[1]], m_i, temperature=T)
                cva = cross_view_kl(teacher, student, m_i, T)
                loss = loss + (1 - r) * nll_it + r * cva
                parts['cva'] = float(cva.detach())
            else:
                loss = loss + nll_it
            parts['nll_image_text'] = float(nll_it.detach())
            parts['aux_words_truncated'] = enc.truncated_aux  # a count: the trainer sums it
        parts['loss'] = float(loss.detach())
        return loss, parts
