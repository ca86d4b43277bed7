r"""GMF: He et al., "Visual Clue Guidance and Consistency Matching Framework for
Multimodal Named Entity Recognition" (Appl. Sci. 2024, 14(6), 2333), over the
tweet graph. No official code was published; its closest public relative is
HVPNeT (Chen et al., NAACL-Findings 2022), whose visual prefix VCG follows.

Read top to bottom against the paper:

1. Visual input (§3.3.2, Fig. 5): the ``scale`` nodes of the tweet graph, one
   ``g x g`` grid of cells per backbone stage (``scale.level`` 0..3, cells
   row-major; ``g`` is the data's ``scale_grid``). ``scale.x`` is zero-padded
   to the widest stage; each level keeps only its own channels (``scale_dims``,
   e.g. 256 / 512 / 1024 / 2048 for ResNet-50), standardised with training-set
   statistics (one :class:`FeatureStandardizer` per level) before the first
   projection. The paper also builds a pyramid for every detected object (Eq.
   10); here each object is ONE token, its ``object`` node feature (the crop's
   pooled last stage), standardised and projected by its own 1x1 map. Per-object
   pyramids would multiply the cached object features by ``4 g^2`` (6.4 MB
   instead of 32 KB per tweet for 4 ResNet objects at ``g = 7``) and the
   object part of the prefix by ``g^2``; see the README for the measured cost.
   Object nodes may be absent (no detector): the prefix is then the image's.
2. Cross-scale attention, CSA (Eqs. 1-4, :class:`CrossScaleAttention`), where
   ``pyramid`` says:

   - ``'pooled'`` (the default, with which the tables were measured): on each
     level's ``g x g`` map, pooled when the graph was built (``scale_grid`` 7
     in the Twitter configs): pool -> CSA -> 1x1 convolution.
   - ``'native'`` (the paper's order): on each stage's whole map at its own
     resolution (56 / 28 / 14 / 7 cells a side for ResNet-50 at 224 px), then
     Eq. 6's Pool to the last stage's grid, then the 1x1 convolution. The
     graphs must be built with ``data.scale_grid=0``: the ``scale`` nodes then
     hold every stage cell, packed without padding
     (:func:`~graphmner.features.grid.pack_cells`; each level's standardiser
     is fitted on every cell), and the prefix has the last stage's cells
     (49). ``--set model.pyramid=native --set data.scale_grid=0``; a run with
     one but not the other is refused before any photo is read
     (:meth:`GMFConfig.check_graph_options`).

   The stage maps are cached rather than computed in the training step:
   computing them means the frozen backbone's forward per tweet in every step
   (0.33 s a photo for ResNet-50 on this CPU, 2.6 s for a batch of 8 against
   a 1.7 s step), caching costs disk and memory. Measured by
   ``experiments/bench_gmf_pyramid.py`` on 6 scikit-image photos, a 2-core
   CPU shared with two trainings (one thread; rough figures, the two orders
   measured in alternating rounds, medians of 3), MiniLM encoder, batches of
   8, no detector, pooled (``scale_grid`` 7) -> native:

   ==================== ================ ================
   per photo / step     ResNet-50 224 px descriptors 42-d
   ==================== ================ ================
   extraction, s/photo  0.33 -> 0.39     0.12 -> 0.12
   cache entry (fp16)   0.99 -> 3.2 MB   29 -> 448 KB
   scale nodes (fp32)   1.5 -> 5.7 MB    0.03 -> 0.67 MB
   training step, s     1.68 -> 1.97     1.21 -> 1.43
   of which visual, s   0.25 -> 0.75     0.03 -> 0.08
   ==================== ================ ================

   For Twitter-2015 + 2017 (about 12,000 photos) the ResNet cache grows from
   about 12 to 38 GB, and Twitter-2015's 4,000 training graphs hold 23 GB of
   scale nodes instead of 6: the default stays ``'pooled'`` until the
   native order is measured against the tables (issue 25).
3. Structured mapping (Eqs. 5-6): a 1x1 convolution per level to the encoder
   width. Eq. 6's Pool (every level to the last stage's size) is, with
   ``'pooled'``, the pooling of every stage to the same ``g x g`` grid at graph
   building; with ``'native'`` an adaptive average pool after CSA.
4. Dynamic gate and visual clue guidance (Eqs. 7-13,
   :class:`VisualCluePrefix`): per encoder layer, a softmax gate over the
   levels mixes them; the mixed cells, then the object tokens, are projected
   to that layer's prefix keys and values and prepended to its self-attention
   (``layer_prefix``), masked by ``prefix_mask`` for padded object slots and for
   tweets whose image is missing: those get exactly the prefix-free word states.
5. Emissions ``w_MNER . h_i`` (Eq. 20) -> the shared CRF (Eqs. 17-21).
6. Consistency matching, CM (Eqs. 14-16, in :meth:`GMF.auxiliary_losses`): the
   text vector ``C_g = tanh(FC(c_0))`` is the encoder's pooler output, from
   one of two passes (``cm_text``):

   - ``'prefix-free'`` (the default, with which the tables were measured): a
     second encoder pass over the tweets that have an image, without the
     visual prefix. The paper defines ``C_g`` on BERT's encoding of the
     sentence (§3.3.1), before any visual clue; taken from the guided pass
     the loss could be met by copying the image through the prefix instead of
     aligning two independent encodings. It costs one more encoder forward /
     backward over those tweets, in training only.
   - ``'guided'``: the pooler of the tagging pass itself, the text read with
     the visual prefix (the reading in which one BERT pass serves both CM and
     the tagger; the paper's text does not say which; no second pass). With
     ``vcg=False`` the tagging pass has no prefix, so ``'guided'`` is then the
     prefix-free vector of that same pass.

   The image vector is the standardised ``image`` node (the global pool of
   the last stage, ``V_g``). Two MLPs map both to the encoder width; cosine
   similarity / tau; ``L_CM = mean(lambda L(P->C) + (1 - lambda) L(C->P))``
   with in-batch negatives. Tweets without an image take no part. The batch
   is the global one: under torchrun the ranks gather their text and image
   vectors with gradients (:func:`~graphmner.nn.gather.gather_rows` over
   :attr:`~MNERModel.batch_group`, as MAF's CA does), so every anchor has the
   negatives of a 1-process run; the count ``cm_negatives`` (anchors x
   negatives, summed per epoch over the ranks) shows it. CSA's batch norms
   likewise take the global batch's statistics, summed over the ranks with
   gradients (SyncBatchNorm's, which torch offers on GPUs only), running
   statistics included.
7. Objective (Eq. 22): ``(1 - alpha) L_CM + alpha L_ner`` (:meth:`loss_weights`).
   The paper calls alpha "a hyperparameter that needs to be fine-tuned" and
   gives no value. Ours, 0.5, was picked from 0.25 / 0.5 / 0.75 on the
   visual-dependence probe's 60-tweet dev split: the Twitter dev sets have no
   images on these machines, so no real dev set with images exists here (the
   sweep is in :class:`GMFConfig`); redo it where the photos are.

Optimisation (``lr_groups``, who takes which of the trainer's two rates):

- ``'single'`` (the default and the Twitter configs': the paper, §4.2: "the
  learning rate to 5e-5", one rate): every parameter at ``train.encoder_lr``
  (5e-5 in the Twitter configs); ``train.head_lr`` is not read.
- ``'encoder'`` (the trainer's split; the demo config's, the small-data
  setting the demo and the probe were measured with): the encoder at
  ``train.encoder_lr``, everything else (CSA, 1x1 maps, prefix, CM's MLPs,
  emissions, CRF) at ``train.head_lr``, 1e-3, the bert-crf baseline's head
  rate, in neither paper. The Twitter tables before issue 25 were measured
  with it: Twitter-2017, MiniLM, 3 epochs, seeds 1-3, it gives 79.43 F1
  against the paper's rate's 78.03 (README, before / after), but the paper
  trains 50 epochs, where a rate of 5e-5 has the steps to move the CRF.
  ``--set model.lr_groups=encoder``.
- ``'hvpnet'`` (HVPNeT's ``multiModal_before_train``, the closest public code):
  the encoder and its prefix modules (here: CSA, maps, prefix, CM's MLPs) at
  ``train.encoder_lr``, the CRF and the emission layer at ``train.head_lr``;
  HVPNeT's rates are 3e-5 and 5e-2 (``run_twitter17.sh``): ``--set
  model.lr_groups=hvpnet --set train.encoder_lr=3e-5 --set
  train.head_lr=5e-2``. In the stored snapshot (13432e1) that last group is
  built but never handed to AdamW, so there the CRF and emissions do not
  train at all; this is the intended split.

Ablations of the paper's Table 4: ``vcg=False`` (no prefix: the emissions are
the text encoder's; CM still trains it), ``csa=False`` (levels go to the 1x1
maps unrefined), ``cm=False`` (no CM loss; the objective is ``L_ner``).

Image text (graphmner's extension, issue 28; the paper reads none, so the
default ``aux_sources=[]`` is the paper's model): with ``aux_sources`` set the
``aux`` words, read by the encoder as a sequence of their own and projected
(:class:`~graphmner.nn.aux_reader.AuxReader`), are prefix tokens after the
cells and the objects, the same in every layer (as the objects, Eq. 10). A
tweet without an image but with aux words reads those alone; in a batch
without any pyramid the prefix is the aux tokens, ungated. A tweet without aux
words gets exactly the paper's emissions. Needs ``vcg=True``.

Tagging unit and CRF (issue 25). By default words are fused and tagged
(first-subword states) by an IOB2-constrained CRF on IOB2-repaired targets.
HVPNeT (GMF's closest public code) fuses and tags every subword piece and constrains nothing:
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
from torch_geometric.utils import degree, to_dense_batch

from ..data.labels import BIO_LABELS
from ..features.grid import NATIVE_GRID, unpack_cells
from ..features.types import VisualWidths
from ..graph import schema
from ..graph.options import GraphOptions
from ..nn.aux_reader import AuxReader
from ..nn.contrastive import symmetric_info_nce
from ..nn.cross_scale_attention import CrossScaleAttention
from ..nn.gather import gather_rows
from ..nn.standardize import FeatureStandardizer
from ..nn.visual_clue_prefix import VisualCluePrefix
from .base import EncoderConfig, MNERModel, MNEROutput, shared_width
from .evidence import Attention, Evidence, Source, encoder_rows, node_sources

#: Backbone stages 1-4, the pyramid levels of the ``scale`` nodes.
PYRAMID_LEVELS = 4

#: Values of ``GMFConfig.lr_groups`` (module docstring, "Optimisation").
LR_GROUPS = ('encoder', 'single', 'hvpnet')
#: Values of ``GMFConfig.pyramid``: where CSA runs (module docstring, 2).
PYRAMIDS = ('pooled', 'native')
#: Values of ``GMFConfig.cm_text``: which encoder pass gives CM its text vector (module docstring, 6).
CM_TEXT = ('prefix-free', 'guided')


@dataclass
class GMFConfig(EncoderConfig):
    """GMF settings (paper §4.2; what the paper leaves out is marked)."""

    visual_dim: int = 2048                # width of image / object / (padded) scale features
    scale_dims: list[int] | None = None   # channels of each level in scale.x (ResNet-50: 256, 512, 1024,
    #                                       2048); None: every level uses all visual_dim channels
    #                                       (both: fit_visual_widths, the vision backend's)
    reduction: int = 16                   # r of CSA (not in the paper: BAM's)
    dilation: int = 4                     # of CSA's two 3x3 convolutions (not in the paper: BAM's)
    temperature: float = 0.21             # tau of CM (paper: Twitter-2015 0.21, Twitter-2017 0.174)
    cm_lambda: float = 0.7                # lambda of Eq. 16, on image -> text (paper: 0.7)
    # Eq. 22's weight of L_ner. Not in the paper. Chosen on the visual-dependence probe's dev split
    # (60 tweets), the only dev set here with images: Twitter's have none, so L_CM is 0 there and alpha
    # only rescales L_ner, which AdamW normalises away. Probe, MiniLM, 3 epochs, seed 1, dev F1 per
    # epoch: 0.25 -> 66.7 / 95.9 / 97.5; 0.5 -> 70.0 / 100 / 100; 0.75 -> 68.3 / 100 / 100. 0.5 and
    # 0.75 tie at the end; 0.5 has the higher mean. A small, saturating dev set: redo it with real images.
    alpha: float = 0.5
    vcg: bool = True                      # visual clue guidance (False: "w/o VCG")
    csa: bool = True                      # cross-scale attention (False: "w/o CSA")
    cm: bool = True                       # consistency matching (False: "w/o CM")
    # Where CSA runs: 'pooled' (on each level pooled to the data's scale_grid x scale_grid, the tables'
    # form) or 'native' (the paper: on each stage at its own resolution, then pooled to the last stage's
    # grid; needs graphs built with data.scale_grid=0). Module docstring, 2.
    pyramid: str = 'pooled'
    # Which pass gives CM its text vector C_g: 'prefix-free' (a second pass without the prefix, the
    # tables' form) or 'guided' (the tagging pass, text read with the visual prefix). Module docstring.
    cm_text: str = 'prefix-free'
    # Who takes train.head_lr: 'single' (nothing: the paper's one rate, train.encoder_lr for all),
    # 'encoder' (everything but the encoder, the trainer's split; the demo's) or 'hvpnet' (the emission
    # layer and the CRF only; CSA, maps, prefix and CM at train.encoder_lr). Module docstring.
    lr_groups: str = 'single'
    # Image-text words ('caption', 'ocr', 'tag') read as prefix tokens after the cells and objects;
    # the paper reads none (graphmner's extension, issue 28): [] keeps the paper's model.
    aux_sources: list = field(default_factory=list)

    def fit_visual_widths(self, widths: VisualWidths) -> GMFConfig:
        dim = shared_width(widths, (schema.SCALE, schema.OBJECT, schema.IMAGE), 'GMF')
        if len(widths.levels) != PYRAMID_LEVELS:
            raise ValueError(f'GMF reads {PYRAMID_LEVELS} pyramid levels, but the vision backend gives '
                             f'{len(widths.levels)} (widths {list(widths.levels)})')
        levels = None if all(w == dim for w in widths.levels) else list(widths.levels)
        return dataclasses.replace(self, visual_dim=dim, scale_dims=levels)

    def __post_init__(self):
        super().__post_init__()
        if self.scale_dims is not None:
            if len(self.scale_dims) != PYRAMID_LEVELS or not all(0 < c <= self.visual_dim
                                                                 for c in self.scale_dims):
                raise ValueError(f'GMFConfig.scale_dims must give {PYRAMID_LEVELS} level widths between 1 '
                                 f'and visual_dim={self.visual_dim}, got {self.scale_dims}')
        if not 0 < self.alpha <= 1:
            raise ValueError(f'GMFConfig.alpha must be in (0, 1], got {self.alpha}')
        if not 0 <= self.cm_lambda <= 1:
            raise ValueError(f'GMFConfig.cm_lambda must be in [0, 1], got {self.cm_lambda}')
        if self.temperature <= 0:
            raise ValueError(f'GMFConfig.temperature must be positive, got {self.temperature}')
        if self.lr_groups not in LR_GROUPS:
            raise ValueError(f'GMFConfig.lr_groups must be one of {", ".join(map(repr, LR_GROUPS))}, '
                             f'got {self.lr_groups!r}')
        if self.pyramid not in PYRAMIDS:
            raise ValueError(f'GMFConfig.pyramid must be one of {", ".join(map(repr, PYRAMIDS))}, '
                             f'got {self.pyramid!r}')
        if self.cm_text not in CM_TEXT:
            raise ValueError(f'GMFConfig.cm_text must be one of {", ".join(map(repr, CM_TEXT))}, '
                             f'got {self.cm_text!r}')
        if self.aux_sources and not self.vcg:
            raise ValueError(f'GMFConfig.aux_sources {list(self.aux_sources)} are read as prefix tokens, '
                             'which vcg=False turns off: set vcg=True or aux_sources=[]')

    def check_graph_options(self, options: GraphOptions) -> None:
        native = options.scale_grid == NATIVE_GRID
        if native != (self.pyramid == 'native'):
            raise ValueError(f"model.pyramid={self.pyramid!r} reads " + (
                'every stage at its own resolution, which needs data.scale_grid=0' if not native else
                "pooled grids, but data.scale_grid=0 keeps every stage at its own resolution: set "
                "model.pyramid=native or data.scale_grid to a grid size") + f' (got {options.scale_grid})')

    @property
    def level_dims(self) -> list[int]:
        return list(self.scale_dims) if self.scale_dims is not None else [self.visual_dim] * PYRAMID_LEVELS


def _mlp(in_channels: int, channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_channels, channels), nn.ReLU(), nn.Linear(channels, channels))


class GMF(MNERModel):
    r"""GMF: visual clue guidance from pyramid scales, cross-scale attention and
    consistency matching (He et al., Appl. Sci. 2024).

    Args:
        config (GMFConfig): encoder, level widths, CSA, CM and ablation settings.
        labels (Sequence[str], optional): BIO labels in id order. (default: :obj:`BIO_LABELS`)

    Shapes:
        - **input:** a :class:`~torch_geometric.data.Batch` of B tweet graphs with
          ``words``, ``image.x``, ``image.missing``, ``scale.x``, ``scale.level`` and
          (optionally) ``object.x``
        - **output:** emissions :math:`(B, T, C)` over the T words of the longest tweet
    """

    name = 'gmf'
    config_class = GMFConfig
    # The prefix realises ('scale', 'guides', 'word') densely (every cell -> every word, as
    # attention), so the relation's edge list is not read and is dropped before batching.
    node_types = (schema.SCALE, schema.OBJECT)
    visual_node_types = (schema.SCALE, schema.OBJECT, schema.IMAGE)

    def __init__(self, config: GMFConfig, labels: Sequence[str] = BIO_LABELS):
        super().__init__(config, labels, pooler=config.cm)
        c, H = config, self.encoder.hidden_size
        dims = c.level_dims
        # First, as in bert-crf: under one seed both start from the same emission weights.
        self.dropout = nn.Dropout(c.dropout)
        self.emission = nn.Linear(H, len(self.tags))    # w_MNER (Eq. 20)
        if c.vcg:
            # Raw features -> per-dimension z-scores with training-set statistics.
            # Native stage maps pack several cells per scale node: each cell's channels count once.
            self.scale_standardizers = nn.ModuleList(
                FeatureStandardizer(dim, (schema.SCALE, ), level=i, packed=c.pyramid == 'native')
                for i, dim in enumerate(dims))
            self.object_standardizer = FeatureStandardizer(c.visual_dim, (schema.OBJECT, ))
            self.csa = nn.ModuleList(CrossScaleAttention(dim, c.reduction, c.dilation)
                                     for dim in dims) if c.csa else None
            self.level_maps = nn.ModuleList(nn.Conv2d(dim, H, 1) for dim in dims)  # Eqs. 5-6
            self.object_map = nn.Linear(c.visual_dim, H)
            self.prefix = VisualCluePrefix(H, len(dims), self.encoder.num_layers)   # Eqs. 7-12
        # Aux words, read by the encoder on their own and projected, as prefix tokens after the objects.
        self.aux_reader = AuxReader(H, H) if c.aux_sources else None
        if c.cm:
            self.image_standardizer = FeatureStandardizer(c.visual_dim, (schema.IMAGE, ))
            self.text_mlp = _mlp(H, H)                  # C_g -> C_n
            self.image_mlp = _mlp(c.visual_dim, H)      # P_g -> P_n

    # -- visual input ------------------------------------------------------------------
    def pyramid(self, batch: Batch) -> tuple[Tensor, Tensor] | None:
        """Each level's standardised map, refined by CSA and mapped to the
        encoder width: ``[N, D, S, H]`` for the N graphs that have scale nodes,
        and their graph ids ``[N]``; :obj:`None` when no graph has any.
        ``pyramid='pooled'``: every level a ``g x g`` grid (``S = g^2``), CSA on
        it; ``'native'``: every level at its own resolution, CSA on it, then
        pooled to the last level's grid (Eq. 6; ``S = 49`` for ResNet at 224 px).

        Under torchrun (:attr:`batch_group`, in training) CSA's batch norms sum
        their statistics over the ranks, forward and backward, so a rank whose
        share has no scale node still runs CSA, on maps of no rows (one cell
        each): ``N = 0``, and its tweets get an all-masked prefix, which reads
        exactly as none."""
        group = self.batch_group if self.training else None
        if schema.SCALE in batch.node_types and batch[schema.SCALE].num_nodes > 0:
            maps, graphs = self.scale_maps(batch)
        elif group is not None and self.csa is not None:
            weight = self.level_maps[0].weight
            maps = [weight.new_zeros(0, dim, 1, 1) for dim in self.config.level_dims]
            graphs = torch.zeros(0, dtype=torch.long, device=weight.device)
        else:
            return None
        levels = []
        for i, f in enumerate(maps):
            if self.csa is not None:
                f = self.csa[i](f, group)                        # F_i' = F_i + F_i * M(F_i)   (Eqs. 1-4)
            if self.config.pyramid == 'native':
                f = F.adaptive_avg_pool2d(f, maps[-1].shape[-1])  # Pool(F_i') to the last stage (Eq. 6)
            v = self.level_maps[i](f)                            # V_i = Conv1x1(...)          (Eqs. 5-6)
            levels.append(v.flatten(2).transpose(1, 2))          # [N, S, H]
        return torch.stack(levels, dim=1), graphs                # [N, D, S, H]

    def scale_maps(self, batch: Batch) -> tuple[list[Tensor], Tensor]:
        """Each level's standardised map ``F_i`` ``[N, C_i, S_i, S_i]`` (all
        levels at the data's grid with ``pyramid='pooled'``) for the N graphs
        that have scale nodes, and their graph ids ``[N]``."""
        store = batch[schema.SCALE]
        x, level = store.x, store.level
        graphs = degree(store.batch, batch.num_graphs).nonzero().view(-1)
        N, native = graphs.numel(), self.config.pyramid == 'native'
        maps = []
        for i, dim in enumerate(self.config.level_dims):
            here = level == i
            per_graph = torch.bincount(store.batch[here], minlength=batch.num_graphs)[graphs]
            if per_graph.numel() == 0 or (per_graph != per_graph[0]).any() or per_graph[0] == 0:
                raise ValueError(f'GMF expects the same number of level-{i} scale nodes in every image, got '
                                 f'{sorted(set(per_graph.tolist()))}')
            rows = x[here].view(N, int(per_graph[0]), x.shape[1])       # [N, R_i, C]
            if native:
                try:
                    f = unpack_cells(rows, dim)                           # F_i: [N, C_i, S_i, S_i]
                except ValueError as error:
                    raise ValueError(f"GMF pyramid='native' reads every stage at its own resolution (graphs "
                                     f'built with data.scale_grid=0); level {i}: {error}') from None
                f = self.scale_standardizers[i](f.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            else:
                grid = round(rows.shape[1] ** 0.5)
                if grid * grid != rows.shape[1]:
                    raise ValueError(f'GMF expects {len(self.config.level_dims)} levels of g x g scale '
                                     f'cells per image, got {rows.shape[1]} cells at level {i} (stages at '
                                     f"their own resolution, data.scale_grid=0, need pyramid='native')")
                f = self.scale_standardizers[i](rows[..., :dim])         # drops level i's zero padding
                f = f.view(N, grid, grid, dim).permute(0, 3, 1, 2)        # F_i: [N, C_i, g, g]
            maps.append(f)
        sides = [f.shape[-1] for f in maps]
        if native and any(a <= b for a, b in zip(sides, sides[1:])):
            raise ValueError(f"GMF pyramid='native' reads every stage at its own resolution (graphs built "
                             f'with data.scale_grid=0), got levels of {sides} cells a side')
        if not native and len(set(sides)) > 1:
            raise ValueError(f'GMF expects {len(sides)} levels of g x g scale cells per image, got levels of '
                             f'{sides} cells a side (stages at their own resolution, data.scale_grid=0, need '
                             f"pyramid='native')")
        return maps, graphs

    def visual_clues(self, batch: Batch) -> tuple[list[tuple[Tensor, Tensor]], Tensor] | None:
        """The layer prefixes (one (key, value) pair ``[B, P, H]`` per encoder
        layer) and ``prefix_mask`` ``[B, P]``, or :obj:`None` when no tweet of
        the batch has a pyramid. ``P = S + K``: the image's cells, then up to K
        object tokens; with ``aux_sources``, then up to A aux tokens (``P = A``
        in a batch without pyramids)."""
        aux, aux_mask = self.aux_reader(self.encoder, self.aux_words_of(batch)) \
            if self.aux_reader is not None else (None, None)        # [B, A, H], [B, A]
        if aux_mask is not None and not aux_mask.any():
            aux = None  # no tweet has aux words: exactly the paper's prefix
        found = self.pyramid(batch)
        if found is None:
            if aux is None:
                return None
            return self.prefix(None, aux), aux_mask             # the aux tokens alone: L x [B, A, H]
        levels, graphs = found
        B = batch.num_graphs
        dense = levels.new_zeros(B, *levels.shape[1:])       # [B, D, S, H], zero for tweets without
        dense[graphs] = levels
        has_pyramid = torch.zeros(B, dtype=torch.bool, device=levels.device)
        has_pyramid[graphs] = True
        objects = None
        object_mask = has_pyramid.new_zeros(B, 0)
        store = batch[schema.OBJECT] if schema.OBJECT in batch.node_types else None
        if store is not None and 'x' in store and store.x.shape[0] > 0:
            tokens = self.object_map(self.object_standardizer(store.x))       # [N_o, H]
            objects, object_mask = to_dense_batch(tokens, store.batch, batch_size=B)  # [B, K, H]
            object_mask = object_mask & has_pyramid[:, None]
        masks = [has_pyramid[:, None].expand(B, levels.shape[2]), object_mask]
        if aux is not None:
            objects = aux if objects is None else torch.cat([objects, aux], dim=1)  # [B, K + A, H]
            masks.append(aux_mask)
        layer_prefix = self.prefix(dense, objects)           # Eqs. 7-12: L x ([B, S + K (+ A), H],) * 2
        return layer_prefix, torch.cat(masks, dim=1)          # [B, S + K (+ A)]

    # -- forward -----------------------------------------------------------------------
    def forward(self, batch: Batch) -> MNEROutput:
        self.check_batch(batch)
        words = self.words_of(batch)
        clues = self.visual_clues(batch) if self.config.vcg else None
        layer_prefix, prefix_mask = clues if clues is not None else (None, None)
        text = self.encoder(words, layer_prefix=layer_prefix, prefix_mask=prefix_mask)  # Eq. 13: H
        self.check_words(batch, text.word_mask)
        emissions = self.emission(self.dropout(text.words))             # Eq. 20: [B, T, C]
        extras = {'prefix_mask': prefix_mask} if prefix_mask is not None else {}  # what explain reads
        counts = {}
        if self.config.cm:
            if self.config.cm_text == 'guided':
                extras['text_vector'] = text.pooler_output              # C_g of the guided pass: [B, H]
            # CM's (anchor, negative) pairs: this rank's image tweets against every other image tweet
            # of the global batch, the batch auxiliary_losses gathers.
            has_image = self.image_mask(batch)
            group = self.batch_group if self.training else None
            everyone = gather_rows([has_image], group).tensors[0]
            counts['cm_negatives'] = int(has_image.sum()) * max(int(everyone.sum()) - 1, 0)
        return MNEROutput(emissions, text.word_mask, extras, counts)

    # -- what it read ------------------------------------------------------------------
    @torch.no_grad()
    def explain(self, batch: Batch) -> list[Evidence]:
        """Per word, the encoder's self-attention (mean over layers and heads)
        over the prefix (the pyramid cells, levels mixed by each layer's gate,
        then the objects, then with ``aux_sources`` the aux words), the tweet's
        words and [CLS]/[SEP]; per tweet with an image, each layer's dynamic
        gate over the levels (Eqs. 7-8)."""
        self.check_explainable()
        words = self.words_of(batch)
        with self.encoder.recording_attention() as record:
            out = self(batch)
        encoded = self.encoder.tokenize(words)
        special = set(self.encoder.tokenizer.all_special_ids)
        prefix_mask = out.extras.get('prefix_mask')
        scales, objects = node_sources(batch, schema.SCALE), node_sources(batch, schema.OBJECT)
        found = self.prefix._gates if prefix_mask is not None else None
        gates = found.tolist() if found is not None else []
        # The tweets' pass is the last one recorded (the aux words' own pass, if any, comes first).
        record = record[-self.encoder.num_layers:]
        aux = node_sources(batch, schema.AUX) if self.aux_reader is not None else [[] for _ in words]
        A = max(map(len, aux), default=0)  # aux slots: the last A of the prefix (none without aux words)
        # The prefix's cells lie on level 0's grid ('pooled': every level's) or, pooled to it, on the last
        # level's ('native': the levels have their own resolutions).
        grid_level = f'(L{len(self.config.level_dims) - 1})' if self.config.pyramid == 'native' else '(L0)'
        on_grid = [sum(c.label.endswith(grid_level) for c in cells) for cells in scales]
        S = max(on_grid, default=0) if gates else 0
        K = prefix_mask.shape[1] - S - A if prefix_mask is not None else 0
        evidence, with_pyramid = [], 0
        for b, tweet in enumerate(words):
            kept = prefix_mask[b].nonzero().view(-1).tolist() if prefix_mask is not None else []
            e = Evidence(self.name, list(tweet), reads_image=self.config.vcg, image_used=bool(kept))
            # The prefix: S cells (their boxes those of grid_level), then K object slots, then A aux slots.
            cells = [c for c in scales[b] if c.label.endswith(grid_level)]
            slots = {i: Source('scale', f'cell {i}', c.box) for i, c in enumerate(cells)}
            slots.update({S + k: o for k, o in enumerate(objects[b])})
            slots.update({S + K + j: a for j, a in enumerate(aux[b])})
            columns, rows = encoder_rows(record, encoded, special, b, kept)
            names = {'prefix': slots, 'word': [Source('word', w) for w in tweet],
                     'special': [Source('special', '[CLS]/[SEP]')]}
            sources = [names[kind][i] for kind, i in columns]
            e.attention.append(Attention('encoder self-attention (mean of layers and heads)', sources,
                                         rows.tolist()))
            if cells and gates:
                e.layer_gates = gates[with_pyramid]
                with_pyramid += 1
            if not kept:
                e.notes.append('no usable image: no prefix, the text encoder alone' if self.config.vcg else
                               'vcg=False: the image trains CM only; tags come from the text')
            evidence.append(e)
        return evidence

    # -- consistency matching and the objective ----------------------------------------
    def auxiliary_losses(self, batch: Batch, output: MNEROutput) -> dict[str, Tensor]:
        """``'cm'`` over the tweets with a usable image of the global batch:
        under torchrun (:attr:`batch_group`, in training) every rank computes
        it over all ranks' rows, as one process would."""
        if not self.config.cm:
            return {}
        has_image = self.image_mask(batch)                              # [B]
        group = self.batch_group if self.training else None
        if group is None and int(has_image.sum()) < 2:  # no pair to contrast: skip the extra encoder pass
            return {'cm': output.emissions.new_zeros(())}
        if self.config.cm_text == 'guided':
            pooled = output.extras['text_vector']                       # C_g, text read with the prefix
        else:
            pooled = self.prefix_free_text(batch, has_image)
        c = self.text_mlp(pooled)                                       # C_n from C_g = tanh(FC(c_0))
        p = self.image_mlp(self.image_standardizer(batch[schema.IMAGE].x))  # P_n from P_g
        # Every rank's rows (the last one may hold fewer tweets, or none with an image).
        has_image, c, p = gather_rows([has_image, c, p], group).tensors
        # Eqs. 14-16: lambda * L(P -> C) + (1 - lambda) * L(C -> P)
        return {'cm': symmetric_info_nce(p, c, self.config.temperature, weight=self.config.cm_lambda,
                                         mask=has_image)}

    def prefix_free_text(self, batch: Batch, has_image: Tensor) -> Tensor:
        """``C_g`` of the tweets with an image from an encoder pass without the
        prefix, zero for the others (they take no part): ``[B, H]``."""
        rows = has_image.nonzero().view(-1)
        pooled = batch[schema.IMAGE].x.new_zeros(batch.num_graphs, self.encoder.hidden_size)
        if rows.numel() == 0:  # none on this rank: nothing to encode, the gather still takes part
            return pooled
        words = self.words_of(batch)
        text = self.encoder([words[i] for i in rows.tolist()]).pooler_output           # [N, H]
        return pooled.index_copy(0, rows, text.to(pooled.dtype))

    def loss_weights(self) -> dict[str, float]:
        if not self.config.cm:
            return {'nll': 1.0}
        return {'nll': self.config.alpha, 'cm': 1.0 - self.config.alpha}  # Eq. 22

    def parameter_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(train.encoder_lr, train.head_lr) parameters, by ``lr_groups``:
        ``'encoder'`` the trainer's split, ``'single'`` every parameter at the
        encoder's rate, ``'hvpnet'`` only the emission layer and the CRF at the
        head's."""
        if self.config.lr_groups == 'encoder':
            return super().parameter_groups()
        if self.config.lr_groups == 'single':
            return list(self.parameters()), []
        head = [*self.emission.parameters(), *self.crf.parameters()]
        ids = {id(p) for p in head}
        return [p for p in self.parameters() if id(p) not in ids], head
