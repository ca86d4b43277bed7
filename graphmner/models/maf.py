r"""MAF: Xu et al., "MAF: A General Matching and Alignment Framework for
Multimodal Named Entity Recognition" (WSDM 2022), as layers over the tweet graph.

Read top to bottom against the paper (equations of its method section; what
the official code ``xubodhu/MAF`` does where the two differ):

1. Input representations. Text: the fine-tuned encoder's word states
   :math:`T` (first subword, dropout) and its pooler output
   :math:`T_s = \tanh(W t_{[CLS]})`. Image: the 7x7 ``region`` cells of the
   frozen backbone's last stage :math:`V = (v_1, \dots, v_{49})` and the
   ``image`` node (their mean, the official ``img_mean``), each standardised
   with training-set statistics, regions projected to the text width
   (the official ``vismap2text``).
2. Cross-modal alignment (CA): :math:`t = W_2 \mathrm{ReLU}(W_1 T_s)`,
   :math:`v = W_4 \mathrm{ReLU}(W_3\, \mathrm{image})`, and the symmetric
   InfoNCE over the batch with cosine similarity / :math:`\tau`,
   :math:`\mathcal{L}_{ca} = \frac{1}{N}\sum_i \lambda_c \mathcal{L}^{T \to V}_i
   + (1 - \lambda_c) \mathcal{L}^{V \to T}_i`. The weight :math:`\lambda_c`
   sits on text -> image as in the official code (``temp_lamb``); the
   paper's slide puts it on image -> text. The batch is the global one: under
   torchrun the ranks gather their vectors (:attr:`~MNERModel.batch_group`),
   so the negatives are those of a 1-process run.
3. Cross-modal interaction: words query the regions over
   ``('region', 'informs', 'word')`` (softmax over each word's incoming
   edges), :math:`V' = \mathrm{LN}(T + CV)`,
   :math:`C = \mathrm{LN}(V' + \mathrm{FFN}(V'))`
   (:class:`~graphmner.nn.cross_modal_interaction.CrossModalInteraction`).
4. Cross-modal matching (CM): in training, :math:`2k` tweets swap their
   :math:`C` as negatives; a matched / mismatched classifier over
   :math:`[T; C]` gives :math:`\hat{y}_m` and :math:`M = \hat{y}_m \odot C`
   (:class:`~graphmner.nn.cross_modal_matching.CrossModalMatching`). The
   classifier's input is a switch: by default (``matching_positions=None``)
   the mean of :math:`[T; C]` over the tweet's words, graphmner's form, kept
   as the default because every MAF result here was measured with it (why a
   mean: that class's docstring); ``matching_positions=128`` is the paper's
   :math:`\mathrm{Flatten}([T; C])` sized as the official code's
   ``Linear(768 * 2 * 128, 2)``, over 128 zero-padded word slots where the
   official code has subword slots. The swap, like
   the official code's, needs more than :math:`2k` image tweets in the
   (global) batch; a batch with fewer trains :math:`\mathcal{L}_{cm}` on
   matched pairs only, and the trainer warns about an epoch that had no
   negative at all (:meth:`MAF.epoch_warnings`).
5. Cross-modal fusion: :math:`g = \sigma(W_{gt} T + W_{gm} M)`,
   :math:`R = g \odot M` (UMGF's element-wise gate,
   :class:`~graphmner.nn.cross_modal_gate.CrossModalGate`, over one edge from
   each word's own visual state to the word), :math:`H = [T; R]` -> emissions
   -> the CRF.
6. Objective, as the official code: :math:`\lambda \mathcal{L}_{crf} +
   (1 - \lambda)(\mathcal{L}_{cm} + \mathcal{L}_{ca})` with
   :math:`\lambda = 0.62` (:meth:`MAF.loss_weights`). The paper writes
   :math:`\alpha \mathcal{L}_{ca} + \beta \mathcal{L}_{cm} + (1-\alpha-\beta)
   \mathcal{L}_{mner}` and gives no values for :math:`\alpha, \beta` (nor
   does the code have them). An :math:`\alpha = \beta = 0.19` is our
   inference, not in the paper: it reads the code's :math:`\lambda` as
   :math:`1 - \alpha - \beta` and splits the rest evenly, which would put
   half the code's weight on each auxiliary loss; nothing here uses it.

A tweet without a usable image (``image.missing``, hence no regions) has no
visual evidence: :math:`C = 0`, so :math:`M = R = 0` and its emissions are
exactly those of the text path :math:`[T; 0]`; it takes no part in
:math:`\mathcal{L}_{ca}` or :math:`\mathcal{L}_{cm}` and is never swapped.
The official code instead fed such tweets a stock photo
(``17_06_4705.jpg``) as if it were theirs.

Image text (graphmner's extension, issue 28; the paper reads none, so the
default ``aux_sources=[]`` is the paper's model): with ``aux_sources`` set the
``aux`` words, read by the encoder as a sequence of their own
(:class:`~graphmner.nn.aux_reader.AuxReader`), are keys and values of the
cross-modal interaction beside the regions: each word's softmax runs over its
regions and over ``('aux','describes','word')``. A tweet with aux words but no
image gets :math:`C` from them and the fusion gate (it still takes no part in
CA or CM, which pair the text with the photo); a tweet without aux words gets
exactly the paper's emissions.

Tagging unit and CRF (issue 25). By default words are fused and tagged
(first-subword states) by an IOB2-constrained CRF on IOB2-repaired targets.
MAF's official code fuses and tags every subword piece and constrains nothing:
``--set model.tagging_unit=subword --set model.constrained_decoding=false
--set model.repair_targets=false`` (:mod:`graphmner.nn.subword`; scores stay
word-level). On bert-crf (Twitter-2017, MiniLM, 3 epochs, seeds 1-3) the
unconstrained, unrepaired CRF loses 1.09 F1, hence the default; README's
before / after table has both switches measured.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Batch

from ..data.labels import BIO_LABELS
from ..features.types import VisualWidths
from ..graph import schema
from ..nn.aux_reader import AuxReader
from ..nn.contrastive import symmetric_info_nce
from ..nn.cross_modal_gate import CrossModalGate
from ..nn.cross_modal_interaction import CrossModalInteraction
from ..nn.cross_modal_matching import CrossModalMatching
from ..nn.gather import gather_rows
from ..nn.standardize import FeatureStandardizer
from .base import EncoderConfig, MNERModel, MNEROutput, shared_width
from .evidence import Attention, Evidence, Gate, Source, attention_rows, edge_rows, gate_rows, node_sources


@dataclass
class MAFConfig(EncoderConfig):
    """MAF settings (official code's defaults, ``run_gate_cl.py``)."""

    visual_dim: int = 2048            # region / image feature width (fit_visual_widths: the backend's)
    heads: int | None = None          # cross-attention heads; None: the encoder's (official: BERT's 12)
    ffn: int | None = None            # FFN width; None: the encoder's intermediate size (official 3072)
    attention_dropout: float = 0.1    # on the word <- region attention weights (BERT's)
    alignment: bool = True            # CA on (False: "w/o CA")
    temperature: float = 0.179        # tau of the CA InfoNCE (temp)
    alignment_weight: float = 0.7     # lambda_c, on text -> image (temp_lamb)
    matching: bool = True             # CM on (False: "w/o CM": M = C, no swap, no L_cm)
    negatives: int = 16               # 2k: tweets swapped per training batch (negative_rate)
    # The CM classifier's input: None, the mean of [T ; C] over words; 128, the official code's
    # Linear(768 * 2 * 128, 2) over 128 flattened padded slots (words here, subwords there).
    matching_positions: int | None = None
    gate: bool = True                 # False: R = M ("w/o gate")
    nll_weight: float = 0.62          # lambda: lambda * L_crf + (1 - lambda) * (L_cm + L_ca) (lamb)
    # Image-text words ('caption', 'ocr', 'tag') the words attend to beside the regions; the paper
    # reads none (graphmner's extension, issue 28): [] keeps the paper's model.
    aux_sources: list = field(default_factory=list)
    # The interaction computed densely per tweet, masked to its edges (same values, less memory
    # traffic); False runs it through MessagePassing, where AttentionExplainer can hook it.
    dense_interaction: bool = True

    def fit_visual_widths(self, widths: VisualWidths) -> MAFConfig:
        dim = shared_width(widths, (schema.REGION, schema.IMAGE), 'MAF')
        return dataclasses.replace(self, visual_dim=dim)

    def __post_init__(self):
        super().__post_init__()
        if self.heads is not None and self.heads <= 0:
            raise ValueError(f'MAFConfig.heads must be positive or None, got {self.heads}')
        if self.negatives < 0 or self.negatives % 2:
            raise ValueError(f'MAFConfig.negatives (2k) must be even and >= 0, got {self.negatives}')
        if not 0.0 < self.nll_weight <= 1.0:
            raise ValueError(f'MAFConfig.nll_weight (lambda) must be in (0, 1], got {self.nll_weight}')


class MAF(MNERModel):
    r"""MAF: cross-modal alignment, region attention, text-image matching and a
    gate over the tweet graph (Xu et al., WSDM 2022).

    Args:
        config (MAFConfig): encoder, attention sizes, CA / CM settings and ablation switches.
        labels (Sequence[str], optional): BIO labels in id order. (default: :obj:`BIO_LABELS`)

    Shapes:
        - **input:** a :class:`~torch_geometric.data.Batch` of B tweet graphs with
          ``words``, ``region.x``, ``image.x``, ``image.missing`` and
          ``('region', 'informs', 'word')``
        - **output:** emissions :math:`(B, T, C)` over the T words of the longest
          tweet; ``extras`` hold what :meth:`auxiliary_losses` reads
    """

    name = 'maf'
    config_class = MAFConfig
    relations = (schema.INFORMS, )
    aux_relations = (schema.DESCRIBES, )
    node_types = (schema.REGION, schema.IMAGE)
    visual_node_types = (schema.REGION, schema.IMAGE)

    def __init__(self, config: MAFConfig, labels: Sequence[str] = BIO_LABELS):
        super().__init__(config, labels, pooler=True)
        c, hidden = config, self.encoder.hidden_size
        heads = c.heads or self.encoder.num_heads
        ffn = c.ffn or getattr(self.encoder.model.config, 'intermediate_size', 4 * hidden)
        if hidden % heads:
            raise ValueError(f'MAFConfig.heads must divide the encoder width {hidden}, got {heads}')
        self.dropout = nn.Dropout(c.dropout)
        # 1. Image encoder side: standardised regions, projected to the text width.
        self.region_standardizer = FeatureStandardizer(c.visual_dim, (schema.REGION, ))
        self.region_projection = nn.Linear(c.visual_dim, hidden)
        # 2. CA projection heads (768 -> 768 -> 768 and 2048 -> 768 -> 768 in the official code).
        if c.alignment:
            self.image_standardizer = FeatureStandardizer(c.visual_dim, (schema.IMAGE, ))
            self.text_head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
            self.image_head = nn.Sequential(nn.Linear(c.visual_dim, hidden), nn.ReLU(),
                                            nn.Linear(hidden, hidden))
        # 3. Cross-modal interaction; 4. matching; 5. gate and emissions over [T ; R].
        self.interaction = CrossModalInteraction(hidden, heads, ffn, c.dropout, c.attention_dropout)
        if c.matching:
            self.matching = CrossModalMatching(hidden, c.negatives, c.matching_positions)
        self.fusion_gate = CrossModalGate(hidden, gated=c.gate)
        self.emission = nn.Linear(2 * hidden, len(self.tags))
        # Aux words, read by the encoder on their own, as further keys and values of the interaction.
        self.aux_reader = AuxReader(hidden, hidden) if c.aux_sources else None

    # -- the graph it reads -------------------------------------------------------------
    def usable_images(self, batch: Batch) -> Tensor:
        """``[B]`` bool: the tweet has a usable image (:meth:`image_mask`) with regions."""
        has_regions = torch.bincount(batch[schema.REGION].batch, minlength=batch.num_graphs) > 0
        return self.image_mask(batch) & has_regions

    # -- forward -----------------------------------------------------------------------
    def forward(self, batch: Batch) -> MNEROutput:
        self.check_batch(batch)
        text = self.encoder(self.words_of(batch))
        mask = text.word_mask                                     # [B, T]
        self.check_words(batch, mask)
        word_batch = batch[schema.WORD].batch
        has_image = self.usable_images(batch)                     # [B]
        t = self.dropout(text.words)                              # T [B, T, H]
        t_nodes = t[mask]                                         # [N_w, H]
        extras: dict[str, Tensor] = {'has_image': has_image}
        counts: dict[str, int] = {}

        # 2. CA vectors (the loss is in auxiliary_losses).
        if self.config.alignment:
            extras['text_vector'] = self.text_head(text.pooler_output)              # t [B, H]
            image_x = self.image_standardizer(batch[schema.IMAGE].x)
            extras['image_vector'] = self.image_head(image_x)                       # v [B, H]

        # 3. Cross-modal interaction: words <- regions over 'informs' (and <- aux words over
        # 'describes', in the same softmax, with aux_sources).
        regions = self.region_projection(self.region_standardizer(batch[schema.REGION].x))  # [N_r, H]
        sources, edges = regions, batch[schema.INFORMS].edge_index
        source_batch = batch[schema.REGION].batch
        has_evidence = has_image
        if self.aux_reader is not None:
            aux = self.aux_states(batch)                          # [N_a, H]
            sources = torch.cat([regions, aux])                   # [N_r + N_a, H]
            # regions, then aux words: not grouped by tweet, which the dense interaction allows
            source_batch = torch.cat([source_batch, batch[schema.AUX].batch.to(source_batch.device)])
            describes = batch[schema.DESCRIBES].edge_index
            offset = torch.tensor([[regions.shape[0]], [0]], device=describes.device)
            edges = torch.cat([edges, describes + offset], dim=1)
            has_aux = torch.bincount(batch[schema.AUX].batch, minlength=batch.num_graphs) > 0
            has_evidence = has_image | has_aux.to(has_image.device)
            extras['has_aux'] = has_aux
        dense = (source_batch, word_batch) if self.config.dense_interaction else None
        c_nodes = self.interaction((sources, t_nodes), edges, batch=dense)  # [N_w, H]
        c = t.new_zeros(t.shape)
        c[mask] = c_nodes                                         # C [B, T, H], 0 without evidence

        # 4. Cross-modal matching: M = P(matched) * C, swapped C for 2k negatives in training.
        if self.config.matching:
            matched = self.matching(t, c, mask, has_image, group=self.batch_group)
            m = matched.visual
            extras['match_logits'], extras['match_target'] = matched.logits, matched.target
            counts['negatives'] = int((matched.target == 0).sum())  # swapped tweets, summed per epoch
        else:
            m = c

        # 5. Gated fusion, one edge from each word's visual state M_i to the word:
        # R_i = sigmoid(W_gt T_i + W_gm M_i) * M_i; words without an image (or aux words) get
        # no edge, R = 0.
        fused = has_evidence[word_batch].nonzero().view(-1)
        r_nodes = self.fusion_gate((m[mask], t_nodes), torch.stack([fused, fused]))  # [N_w, H]
        r = t.new_zeros(t.shape)
        r[mask] = r_nodes                                         # R [B, T, H]
        emissions = self.emission(torch.cat([t, r], dim=-1))      # H = [T ; R] -> [B, T, C]
        return MNEROutput(emissions, mask, extras, counts)

    # -- what it read ----------------------------------------------------------------
    @torch.no_grad()
    def explain(self, batch: Batch) -> list[Evidence]:
        r"""Per word, the interaction's attention over the regions (mean over
        heads; with ``aux_sources`` over the regions and the aux words, one
        softmax shown as its two parts) and the fusion gate on its matched visual state; per tweet, the
        matched probability :math:`\hat{y}_m` (does the image fit the text?)."""
        self.check_explainable()
        out = self(batch)
        has_image = out.extras['has_image'].tolist()
        informs = batch[schema.INFORMS].edge_index
        regions = node_sources(batch, schema.REGION)
        has_aux = out.extras.get('has_aux', torch.zeros(len(has_image), dtype=torch.bool)).tolist()
        evidence = [Evidence(self.name, list(words), reads_image=True, image_used=used or aux)
                    for words, used, aux in zip(self.words_of(batch), has_image, has_aux)]
        attention = self.interaction.attention
        described = batch[schema.DESCRIBES].num_edges if self.aux_reader is not None else 0
        if informs.shape[1] + described:  # the interaction attends only where there are edges
            parts = [(schema.REGION, regions, slice(0, informs.shape[1]), 0)]
            if self.aux_reader is not None:
                parts.append((schema.AUX, node_sources(batch, schema.AUX), slice(informs.shape[1], None),
                              batch[schema.REGION].num_nodes))
            for kind, nodes, edges, offset in parts:
                edge_index = attention._edge_index[:, edges].clone()
                edge_index[0] -= offset
                rows = edge_rows(batch, edge_index, attention._alpha[edges].mean(-1), kind)
                for e, r, sources in zip(evidence, rows, nodes):
                    if sources:
                        e.attention.append(Attention(f'cross-modal interaction (word <- {kind})', sources,
                                                     attention_rows(r)))
        gate = self.fusion_gate
        values = torch.full((batch[schema.WORD].num_nodes, ), float('nan'))
        values[gate._edge_index[1].cpu()] = gate._alpha.float().cpu()  # one edge per word: M_i -> word i
        ptr = batch[schema.WORD].ptr.tolist()
        matched = out.extras['match_logits'].softmax(-1)[:, 1].tolist() if self.config.matching else None
        for b, e in enumerate(evidence):
            if not e.image_used:
                e.notes.append('no usable image: tagged from the text path [T ; 0]')
                continue
            if not has_image[b]:
                e.notes.append('no usable image: the aux words alone make C')
            e.gates.append(Gate('fusion gate on the matched visual state', [Source('image', 'M (matched C)')],
                                gate_rows(values[ptr[b]:ptr[b + 1]].unsqueeze(-1))))
            if matched is not None:
                e.match_probability = matched[b]
        return evidence

    # -- 6. objective --------------------------------------------------------------------
    def auxiliary_losses(self, batch: Batch, output: MNEROutput) -> dict[str, Tensor]:
        """``'ca'`` and ``'cm'``, over the tweets with a usable image only, of
        the global batch: under torchrun (:attr:`batch_group`, in training)
        every rank computes both over all ranks' rows, as one process would."""
        extras = output.extras
        names = ['has_image']
        if self.config.alignment:
            names += ['text_vector', 'image_vector']
        if self.config.matching:
            names += ['match_logits', 'match_target']
        group = self.batch_group if self.training else None
        shared = dict(zip(names, gather_rows([extras[n] for n in names], group).tensors))
        has_image = shared['has_image']
        losses = {}
        if self.config.alignment:
            losses['ca'] = symmetric_info_nce(shared['text_vector'], shared['image_vector'],
                                              self.config.temperature, weight=self.config.alignment_weight,
                                              mask=has_image)
        if self.config.matching:
            logits, target = shared['match_logits'][has_image], shared['match_target'][has_image]
            # No image in the batch: nothing to match (a mean over no row would be NaN).
            losses['cm'] = F.cross_entropy(logits, target) if target.numel() else logits.sum()
        return losses

    def epoch_warnings(self, totals: dict[str, float]) -> list[str]:
        c = self.config
        if c.matching and c.negatives and totals.get('negatives') == 0:
            return [f'MAF trained with 0 CM negatives: no training batch held more than 2k = {c.negatives} '
                    'tweets with a usable image (only then are 2k swapped), so L_cm saw matched pairs '
                    f'only; raise train.batch_size above {c.negatives} or lower model.negatives']
        return []

    def loss_weights(self) -> dict[str, float]:
        aux = 1.0 - self.config.nll_weight
        weights = {'nll': self.config.nll_weight}
        if self.config.alignment:
            weights['ca'] = aux
        if self.config.matching:
            weights['cm'] = aux
        return weights
