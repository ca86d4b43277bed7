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
``NLL_text`` for tweets without. In the model contract's terms: in training,
:meth:`ITA.forward` returns the text-only view (the student, whose NLL is the
main term) with the image-text view of the tweets with aux words in its
``extras``, which :meth:`ITA.auxiliary_losses` scores.

Inference views: ``'auto'`` (image-text where a tweet has aux words, the
config's default), ``'image-text'``, ``'text'``; the dev score that selects
the checkpoint is the mean F1 of the two named views, as the official code's
macro-average.

Both views tag in BIOES, as the official code does (``tag_to_bioes``); the
marginals CVA aligns are over BIOES tags, and predictions come back as BIO.

Tagging unit and CRF (issue 25). ITA's official code (flair) tags words from
their first subword, as here; its CRF constrains nothing
(``--set model.constrained_decoding=false``), while the default constrains
BIOES transitions: on bert-crf (Twitter-2017, MiniLM, 3 epochs, seeds 1-3)
the unconstrained, unrepaired BIO CRF loses 1.09 F1 (README, before / after).
The subword unit of the other official codes is ``model.tagging_unit=subword``
(with ``model.tag_scheme=bio``, unconstrained).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch

from ..data.labels import BIO_LABELS
from ..graph import schema
from .base import EncoderConfig, MNERModel, MNEROutput
from .evidence import Attention, Evidence, Source, encoder_rows


def cross_view_kl(teacher_log_marginals: Tensor, student_log_marginals: Tensor,
                  mask: Tensor, temperature: float = 1.0) -> Tensor:
    r"""``T^2 * sum_{b,t in mask} KL(p_teacher || p_student) / B``; inputs are
    (already tempered) log marginals ``(B, T, C)``; the teacher is detached."""
    t = teacher_log_marginals.detach()
    kl = (t.exp() * (t - student_log_marginals)).sum(-1)  # [B, T]
    kl = kl.masked_fill(~mask.bool(), 0.0)
    return temperature ** 2 * kl.sum() / max(t.shape[0], 1)


VIEWS = ('auto', 'image-text', 'text')


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
    node_types = (schema.AUX, )  # read as text beside the tweet, through no edge
    views = VIEWS
    text_view = 'text'
    #: The views whose mean dev F1 selects the checkpoint (official: the macro-average of both).
    selection_views = ('image-text', 'text')

    def __init__(self, config: ITAConfig, labels: Sequence[str] = BIO_LABELS):
        super().__init__(config, labels)
        if config.inference_view not in VIEWS:
            raise ValueError(f"ITAConfig.inference_view must be one of {VIEWS}, "
                             f"got {config.inference_view!r}")
        self.dropout = nn.Dropout(config.dropout)
        self.emission = nn.Linear(self.encoder.hidden_size, len(self.tags))

    @classmethod
    def needs_image_features(cls, config: ITAConfig) -> bool:
        """Object tags (LA) come from the detector and OCR (OCA) from the
        photo; captions (GA) are read from a file."""
        return bool({'tag', 'ocr'} & set(config.aux_sources))

    @property
    def view(self) -> str:
        return self._view if self._view is not None else self.config.inference_view

    def _view_output(self, words, aux) -> tuple[MNEROutput, int]:
        """Emissions of one view, and how many aux words did not fit."""
        enc = self.encoder.tokenize(words, aux)
        out = self.encoder(words, aux, encoded=enc)
        return MNEROutput(self.emission(self.dropout(out.words)), out.word_mask), enc.truncated_aux

    def forward(self, batch: Batch) -> MNEROutput:
        words, aux = self.words_of(batch), self.aux_words_of(batch)
        if self.training:
            out = self._training_output(words, aux)
        elif self.view == 'text' or (self.view == 'auto' and not any(aux)):
            out = self._view_output(words, None)[0]
        else:
            out = self._view_output(words, aux)[0]
        self.check_words(batch, out.mask)
        return out

    def _training_output(self, words: list[list[str]], aux: list[list[str]]) -> MNEROutput:
        """The text-only view (the student) and, in ``extras``, the image-text
        view of the tweets with aux words: ``image_text_index`` ``[A]`` (their
        rows), ``image_text_emissions`` ``[A, T', C]`` and ``image_text_mask``."""
        text = self._view_output(words, None)[0]
        has = [i for i, a in enumerate(aux) if a]
        if not has:
            return text
        image_text, truncated = self._view_output([words[i] for i in has], [aux[i] for i in has])
        extras = {'image_text_index': torch.tensor(has, device=text.emissions.device),
                  'image_text_emissions': image_text.emissions, 'image_text_mask': image_text.mask}
        # The trainer sums counts over an epoch.
        return MNEROutput(text.emissions, text.mask, extras, {'aux_words_truncated': truncated})

    @torch.no_grad()
    def explain(self, batch: Batch) -> list[Evidence]:
        """Per word, the image-text view's encoder self-attention (mean over
        layers and heads) over the tweet's words, the aux words and [CLS]/[SEP],
        and the CRF marginals of both views (``'image-text'`` and ``'text'``,
        over :attr:`tags`) that CVA aligns; a note says which view tags."""
        self.check_explainable()
        words, aux = self.words_of(batch), self.aux_words_of(batch)
        text = self._view_output(words, None)[0]
        with self.encoder.recording_attention() as record:
            image_text = self._view_output(words, aux)[0]
        encoded = self.encoder.tokenize(words, aux)
        special = set(self.encoder.tokenizer.all_special_ids)
        marginals = {view: self.crf.marginals(out.emissions, out.mask).float().cpu()
                     for view, out in (('image-text', image_text), ('text', text))}
        evidence = []
        for b, (tweet, extra) in enumerate(zip(words, aux)):
            view = 'text' if self.view == 'text' or (self.view == 'auto' and not extra) else 'image-text'
            used = view == 'image-text' and bool(extra)
            e = Evidence(self.name, list(tweet), reads_image=True, image_used=used, tags=list(self.tags),
                         view_marginals={v: m[b, :len(tweet)].tolist() for v, m in marginals.items()},
                         notes=[f"tagged by the '{view}' view" + ('' if extra else ' (no aux words)')])
            columns, rows = encoder_rows(record, encoded, special, b)
            names = {'word': [Source('word', w) for w in tweet], 'aux': [Source('aux', w) for w in extra],
                     'special': [Source('special', '[CLS]/[SEP]')]}
            e.attention.append(Attention('image-text view encoder self-attention (mean of layers and heads)',
                                         [names[kind][i] for kind, i in columns], rows.tolist()))
            evidence.append(e)
        return evidence

    def auxiliary_losses(self, batch: Batch, output: MNEROutput) -> dict[str, Tensor]:
        """The image-text view's NLL and CVA over the tweets with aux words,
        from a training ``output`` (the text-only view, the student, with the
        image-text view in its ``extras``); none without aux words."""
        extras = output.extras
        if 'image_text_emissions' not in extras:
            return {}
        idx, e_i, m_i = extras['image_text_index'], extras['image_text_emissions'], extras['image_text_mask']
        tags = self.target_tags(batch)[idx, :e_i.shape[1]].to(e_i.device)
        losses = {'nll_image_text': self.crf.nll(e_i, tags, m_i)}
        if self.config.cva:
            T = self.config.temperature
            teacher = self.crf.log_marginals(e_i.detach(), m_i, temperature=T)
            student = self.crf.log_marginals(output.emissions[idx, :e_i.shape[1]], m_i, temperature=T)
            losses['cva'] = cross_view_kl(teacher, student, m_i, T)
        return losses

    def loss_weights(self) -> dict[str, float]:
        """``NLL_text + (1-r) NLL_image_text + r CVA``; without CVA both NLLs count fully."""
        r = self.config.cva_weight
        if not self.config.cva:
            return {'nll': 1.0, 'nll_image_text': 1.0}
        return {'nll': 1.0, 'nll_image_text': 1 - r, 'cva': r}
