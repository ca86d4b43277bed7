r"""UMGF: Zhang et al., "Multi-modal Graph Fusion for Named Entity Recognition
with Targeted Visual Guidance" (AAAI 2021), as graph layers.

Read top to bottom against the paper:

1. Multi-modal graph (§ "Multi-modal Graph"): textual nodes are the tweet's
   words, visual nodes its ``object`` nodes. Edges come from the tweet graph:
   ``('word','intra','word')`` and ``('object','intra','object')`` (every
   ordered pair) and ``('object','grounds','word')`` with its reverse (an object
   matched to a noun phrase -> that phrase's words; a "general" object -> every
   word). What the visual nodes are is ``visual_input``:

   - ``'paper'`` (default): the detector's objects, grounded to the tweet's
     noun phrases by the graph builder (the paper's rule, with a detector and
     class-name matching in place of its phrase-grounding model); an object
     no phrase names is general. A tweet whose image has no detected object
     uses the whole-image feature as its one visual node (the official code's
     fallback), linked to every word. ``edges='all'`` links every word with
     every object instead.
   - ``'official'``: the official code's input (``TransformersWsz/UMGF``):
     four crops, one per general word (person, miscellaneous, location,
     organization), each linked to every word. Without its grounding model,
     *person* takes the most confident detected person and the other three
     words the whole image, its fallback
     (:class:`~graphmner.graph.transforms.GeneralWordObjects` says exactly
     how this differs).
   - ``'regions'``: the paper's "w/o Tar." ablation: the evenly split grid
     cells (the ``region`` nodes, 7x7 for ResNet) as visual nodes, each linked
     to every word (:class:`~graphmner.graph.transforms.RegionsAsObjects`).

   The default stays ``'paper'``: it is the paper's model and what every
   UMGF result of this repository was measured with (the Twitter tables
   without images, hence on the text path; the probe without a detector,
   hence on one whole-image node). A tweet without a
   usable image (``image.missing``) gets no visual node in every form, so its
   words go through a text-only Transformer (the paper's footnote 1; the
   official code read a stock photo). These rules are graph transforms
   (:meth:`UMGF.graph_transforms`) that the data pipeline applies;
   ``forward`` only reads the graph.
2. Initial states: encoder word states -> linear to ``d``; visual features ->
   per-dimension standardisation (statistics of the training split, see
   :class:`~graphmner.nn.standardize.FeatureStandardizer`) -> visual MLP
   (Linear-ReLU-Dropout-Linear-ReLU-Dropout) to ``d``.
3. L graph-based multi-modal fusion layers (:class:`UMGFFusionLayer`),
   Eqs. 1-8, each sublayer as ``LayerNorm(x + Dropout(sublayer))`` (post-LN;
   the paper omits layer norm and residual "for simplicity").
4. CRF decoding over emissions from ``[encoder word state ; fused word state]``
   (no dropout there: neither the paper nor the official code has one).

Paper vs official code (``TransformersWsz/UMGF``): the paper uses 2 layers and
dropout 0.5 (the defaults here), the code 6 layers and 0.4; the code's visual
self-attention has no value/output projection (``visual_value_projection=False``).
``visual_input='official', num_layers=6, dropout=0.4,
visual_value_projection=False`` is the official code's model but for its
grounding model and its fine-tuned ResNet-152 (the backbone here is frozen).

Image text (graphmner's extension, issue 28; the paper reads none, so the
default ``aux_sources=[]`` is the paper's model): with ``aux_sources`` set
(``'caption'``, ``'ocr'``, ``'tag'``) the ``aux`` words are a second visual
modality of the unified graph. Their initial states are the encoder's, read as
a sequence of their own and projected to ``d``
(:class:`~graphmner.nn.aux_reader.AuxReader`); in every layer they get Eq. 2
over ``('aux','intra','aux')``, the gate of Eqs. 3-6 over
``('aux','describes','word')`` and its reverse (every aux word <-> every word),
and Eqs. 7-8, by the same modules as the objects (:data:`MODALITIES`). A word
sums the gated messages of both modalities in Eq. 3, so a tweet without aux
words gets exactly the paper's emissions.

Tagging unit and CRF (issue 25). By default words are fused and tagged
(first-subword states) by an IOB2-constrained CRF on IOB2-repaired targets.
UMGF's official code fuses and tags every subword piece and constrains nothing:
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
from torch import Tensor, nn
from torch_geometric.data import Batch

from ..data.labels import BIO_LABELS
from ..features.types import VisualWidths
from ..graph import schema
from ..graph.schema import edge_type_name
from ..graph.transforms import CompleteBipartite, GeneralWordObjects, ImageAsObject, RegionsAsObjects
from ..nn.aux_reader import AuxReader
from ..nn.cross_modal_gate import CrossModalGate
from ..nn.graph_attention import GraphMultiHeadAttention
from ..nn.standardize import FeatureStandardizer
from .base import EncoderConfig, MNERModel, MNEROutput, shared_width
from .evidence import (
    Attention,
    Evidence,
    Gate,
    attention_rows,
    edge_rows,
    gate_rows,
    node_sources,
    word_sources,
)

EDGES = ('grounded', 'all')
#: What the visual nodes are: the paper's grounded objects, the official code's four
#: general-word crops, or the "w/o Tar." ablation's evenly split regions.
VISUAL_INPUTS = ('paper', 'official', 'regions')
_WORD_INTRA = edge_type_name(schema.WORD_INTRA)      # 'word__intra__word'
_OBJECT_INTRA = edge_type_name(schema.OBJECT_INTRA)  # 'object__intra__object'
_GROUNDS = edge_type_name(schema.GROUNDS)            # 'object__grounds__word'
_REV_GROUNDS = edge_type_name(schema.REV_GROUNDS)    # 'word__rev_grounds__object'
#: Per visual modality of the unified graph: its intra relation, its relation to the words and
#: the reverse. Aux words (captions, OCR, tags) are a modality as the objects are.
MODALITIES = {schema.OBJECT: (_OBJECT_INTRA, _GROUNDS, _REV_GROUNDS),
              schema.AUX: tuple(edge_type_name(r) for r in (schema.AUX_INTRA, schema.DESCRIBES,
                                                             schema.REV_DESCRIBES))}


@dataclass
class UMGFConfig(EncoderConfig):
    """UMGF settings (paper's "Implementation Details"; code defaults in comments)."""

    d_model: int = 512                  # d: width of both modalities' node states
    heads: int = 8                      # attention heads
    ffn: int = 256                      # hidden width of the position-wise FFN (code: d_hidden)
    num_layers: int = 2                 # L (paper: 2; official code: 6)
    dropout: float = 0.5                # everywhere in the fusion (code: 0.4)
    visual_dim: int = 2048              # object / image feature width (fit_visual_widths: the backend's)
    # 'paper': detected objects grounded to noun phrases; 'official': the official code's four
    # general-word crops; 'regions': the grid cells ("w/o Tar."). The last two link every word.
    visual_input: str = 'paper'
    # 'grounded': the graph's NP rule; 'all': every word <-> object (for 'paper'; the other two
    # visual inputs have no object a phrase names, so every word either way)
    edges: str = 'grounded'
    visual_self_attention: bool = True  # False: no object <-> object attention ("w/o VCorr.")
    visual_value_projection: bool = True  # False: the official code's visual MHA (no V / O linears)
    gate: bool = True                   # False: plain sum of neighbour states (no cross-modal gate)
    # Word attention computed densely per tweet, masked to the 'intra' edges (same values,
    # ~3x faster); False runs it through MessagePassing, where AttentionExplainer can hook it.
    dense_word_attention: bool = True
    # Image-text words ('caption', 'ocr', 'tag') read as a further modality of the graph; the
    # paper reads none (graphmner's extension, issue 28): [] keeps the paper's model.
    aux_sources: list = field(default_factory=list)

    def fit_visual_widths(self, widths: VisualWidths) -> UMGFConfig:
        # Without objects UMGF reads the image as one (ImageAsObject); 'regions' reads the grid cells.
        visual = schema.REGION if self.visual_input == 'regions' else schema.OBJECT
        dim = shared_width(widths, (visual, schema.IMAGE), 'UMGF')
        return dataclasses.replace(self, visual_dim=dim)

    def __post_init__(self):
        super().__post_init__()
        if self.visual_input not in VISUAL_INPUTS:
            raise ValueError(f'UMGFConfig.visual_input must be one of {VISUAL_INPUTS}, '
                             f"got '{self.visual_input}'")
        if self.edges not in EDGES:
            raise ValueError(f"UMGFConfig.edges must be one of {EDGES}, got '{self.edges}'")
        if self.d_model % self.heads:
            raise ValueError(f"UMGFConfig.heads must divide d_model, got d_model={self.d_model}, "
                             f"heads={self.heads}")
        if self.num_layers < 1:
            raise ValueError(f'UMGFConfig.num_layers must be >= 1, got {self.num_layers}')


class SublayerConnection(nn.Module):
    """``LayerNorm(x + Dropout(y))``: the post-LN residual around every sublayer."""

    def __init__(self, channels: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.norm(x + self.dropout(y))


class UMGFFusionLayer(nn.Module):
    r"""One graph-based multi-modal fusion layer of UMGF (Eqs. 1-8).

    Submodules are keyed by the edge type they run over (PyG's ``'src__rel__dst'``).
    Each visual modality (the paper's objects, and graphmner's aux words where
    the model reads them) gets Eqs. 2, 5, 6 and 8 of its own over its relations
    in :data:`MODALITIES`; a word sums the gated messages of all of them in Eq. 3.

    Args:
        channels (int): node state width :math:`d`.
        heads (int): attention heads.
        ffn (int): FFN hidden width.
        dropout (float): residual, attention and FFN dropout.
        visual_self_attention (bool, optional): Eq. 2 on (else :math:`C_o = H_o`). (default: :obj:`True`)
        visual_value_projection (bool, optional): V / O linears in Eq. 2 over the
            objects. (default: :obj:`True`)
        gate (bool, optional): the cross-modal gate of Eqs. 4 and 6. (default: :obj:`True`)
        update_visual (bool, optional): compute Eqs. 5, 6 and 8. The last layer skips
            them: only word states reach the CRF, so its visual update would be dead
            weights. (default: :obj:`True`)
        modalities (Sequence[str], optional): the visual node types, keys of
            :data:`MODALITIES`. (default: :obj:`('object',)`)

    Shapes:
        - **input:** word states :math:`(N_w, d)`, a dict of visual states
          :math:`(N_m, d)` per modality and a dict of ``edge_index`` per edge type name
        - **output:** updated ``(word states, dict of visual states)``
    """

    def __init__(self, channels: int, heads: int, ffn: int, dropout: float,
                 visual_self_attention: bool = True, visual_value_projection: bool = True,
                 gate: bool = True, update_visual: bool = True,
                 modalities: Sequence[str] = (schema.OBJECT, )):
        super().__init__()
        self.visual_self_attention = visual_self_attention
        self.update_visual = update_visual
        self.modalities = tuple(modalities)
        attention = {_WORD_INTRA: GraphMultiHeadAttention(channels, heads, dropout)}
        gates = {}
        for m in self.modalities:
            intra, to_word, to_visual = MODALITIES[m]
            if visual_self_attention:
                attention[intra] = GraphMultiHeadAttention(
                    channels, heads, dropout, project_value=visual_value_projection or m != schema.OBJECT)
            gates[to_word] = CrossModalGate(channels, gated=gate)
            if update_visual:
                gates[to_visual] = CrossModalGate(channels, gated=gate)
        self.attention = nn.ModuleDict(attention)
        self.gate = nn.ModuleDict(gates)
        kinds = (schema.WORD, *self.modalities) if update_visual else (schema.WORD, )
        self.ffn = nn.ModuleDict({
            t: nn.Sequential(nn.Linear(channels, ffn), nn.ReLU(), nn.Linear(ffn, channels))
            for t in kinds})
        residual = {f'{t}_{step}': SublayerConnection(channels, dropout)
                    for t in kinds for step in ('attention', 'gate', 'ffn')}
        if visual_self_attention and not update_visual:
            residual.update({f'{m}_attention': SublayerConnection(channels, dropout)
                             for m in self.modalities})
        self.residual = nn.ModuleDict(residual)

    def forward(self, h_word: Tensor, h_visual: dict[str, Tensor], edge_index: dict[str, Tensor],
                word_batch: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """``word_batch`` (each word's tweet) selects the dense evaluation of Eq. 1."""
        word = schema.WORD
        # Eq. 1: C_x = MultiHead(H_x, H_x, H_x)   (intra-modal, textual)
        c_word = self.residual[f'{word}_attention'](
            h_word, self.attention[_WORD_INTRA](h_word, edge_index[_WORD_INTRA], batch=word_batch))
        # Eq. 2: C_o = MultiHead(H_o, H_o, H_o)   (intra-modal, visual; each modality on its own)
        c_visual = {}
        for m in self.modalities:
            intra = MODALITIES[m][0]
            c_visual[m] = (self.residual[f'{m}_attention'](
                h_visual[m], self.attention[intra](h_visual[m], edge_index[intra]))
                if self.visual_self_attention else h_visual[m])
        # Eqs. 3-4: R_x,i = C_x,i + sum_{j in N(i)} b_ij * C_o,j,  b_ij = sigmoid(W1 C_x,i + W2 C_o,j),
        # N(i) over every modality (a word no aux word describes adds exactly 0).
        message = sum(self.gate[MODALITIES[m][1]]((c_visual[m], c_word), edge_index[MODALITIES[m][1]])
                      for m in self.modalities)
        r_word = self.residual[f'{word}_gate'](c_word, message)
        if not self.update_visual:
            return self.residual[f'{word}_ffn'](r_word, self.ffn[word](r_word)), c_visual
        h_word = self.residual[f'{word}_ffn'](r_word, self.ffn[word](r_word))
        updated = {}
        for m in self.modalities:
            to_visual = MODALITIES[m][2]
            # Eqs. 5-6: R_o,j = C_o,j + sum_{i in N(j)} b'_ji * C_x,i,  b'_ji = sigmoid(W3 C_o,j + W4 C_x,i)
            r = self.residual[f'{m}_gate'](c_visual[m], self.gate[to_visual]((c_word, c_visual[m]),
                                                                               edge_index[to_visual]))
            # Eqs. 7-8: H_x = FFN(R_x), H_o = FFN(R_o)
            updated[m] = self.residual[f'{m}_ffn'](r, self.ffn[m](r))
        return h_word, updated


class UMGF(MNERModel):
    r"""UMGF: unified multi-modal graph fusion with targeted visual guidance
    (Zhang et al., AAAI 2021).

    Args:
        config (UMGFConfig): encoder, fusion sizes, edge rule and ablation switches.
        labels (Sequence[str], optional): BIO labels in id order. (default: :obj:`BIO_LABELS`)

    Shapes:
        - **input:** a :class:`~torch_geometric.data.Batch` of B tweet graphs with
          ``words``, ``object.x``, ``image.x``, ``image.missing`` and the edge types in
          :attr:`relations`
        - **output:** emissions :math:`(B, T, C)` over the T words of the longest tweet
    """

    name = 'umgf'
    config_class = UMGFConfig
    relations = (schema.WORD_INTRA, schema.OBJECT_INTRA, schema.GROUNDS, schema.REV_GROUNDS)
    aux_relations = (schema.AUX_INTRA, schema.DESCRIBES, schema.REV_DESCRIBES)
    visual_node_types = (schema.OBJECT, schema.IMAGE)  # the image becomes the object of a tweet without any

    def __init__(self, config: UMGFConfig, labels: Sequence[str] = BIO_LABELS):
        super().__init__(config, labels)
        c, d = config, config.d_model
        if c.visual_input == 'regions':
            self.node_types = (schema.REGION, )  # kept for RegionsAsObjects, which makes them the objects
        # Initial textual node states H_x^(0): encoder word state -> linear to d.
        self.text_proj = nn.Linear(self.encoder.hidden_size, d)
        # Initial visual node states H_o^(0): standardised features -> the visual MLP.
        self.standardize = FeatureStandardizer(c.visual_dim, (schema.OBJECT, ))
        self.visual_mlp = nn.Sequential(
            nn.Linear(c.visual_dim, d), nn.ReLU(), nn.Dropout(c.dropout),
            nn.Linear(d, d), nn.ReLU(), nn.Dropout(c.dropout))
        modalities = (schema.OBJECT, schema.AUX) if c.aux_sources else (schema.OBJECT, )
        self.layers = nn.ModuleList(UMGFFusionLayer(
            d, c.heads, c.ffn, c.dropout, visual_self_attention=c.visual_self_attention,
            visual_value_projection=c.visual_value_projection, gate=c.gate,
            update_visual=i < c.num_layers - 1, modalities=modalities)
            for i in range(c.num_layers))
        self.emission = nn.Linear(self.encoder.hidden_size + d, len(self.tags))
        # Initial aux node states: the aux words read by the encoder on their own, projected to d.
        self.aux_reader = AuxReader(self.encoder.hidden_size, d) if c.aux_sources else None
        self.reset_parameters()

    def reset_parameters(self):
        for module in (self.text_proj, self.visual_mlp[0], self.visual_mlp[3]):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)

    # -- the multi-modal graph -------------------------------------------------------
    def graph_transforms(self) -> list:
        """The visual nodes of ``visual_input``: for ``'paper'`` the detected
        objects (the whole image where there is none; with ``edges='all'``
        each linked to every word), for ``'official'`` the four general-word
        crops, for ``'regions'`` the grid cells (both linked to every word)."""
        if self.config.visual_input == 'official':
            return [GeneralWordObjects()]
        if self.config.visual_input == 'regions':
            return [RegionsAsObjects()]
        transforms = [ImageAsObject()]
        if self.config.edges == 'all':
            transforms.append(CompleteBipartite(schema.GROUNDS, schema.REV_GROUNDS))
        return transforms

    @classmethod
    def upgrade_config(cls, config: dict) -> dict:
        """Checkpoints written before ``visual_input`` hold ``targeted_objects``:
        True is the default, False linked every object to every word, which
        is ``edges='all'``."""
        config = dict(config)
        if 'targeted_objects' in config and not config.pop('targeted_objects'):
            config['edges'] = 'all'
        return config

    # -- forward -----------------------------------------------------------------------
    def forward(self, batch: Batch) -> MNEROutput:
        self.check_batch(batch)
        text = self.encoder(self.words_of(batch))                # words [B, T, H]
        self.check_words(batch, text.word_mask)
        word_batch = batch[schema.WORD].batch
        objects = batch[schema.OBJECT]
        h_word = self.text_proj(text.words[text.word_mask])      # H_x^(0) [N_w, d]
        h_object = self.visual_mlp(self.standardize(objects.x))  # H_o^(0) [N_o, d]
        h_visual = {schema.OBJECT: h_object}
        if self.aux_reader is not None:
            h_visual[schema.AUX] = self.aux_states(batch)        # [N_a, d]
        edge_index = {edge_type_name(r): batch[r].edge_index for r in self.relations}
        dense = word_batch if self.config.dense_word_attention else None
        for layer in self.layers:                                # Eqs. 1-8, L times
            h_word, h_visual = layer(h_word, h_visual, edge_index, dense)
        fused = text.words.new_zeros(*text.word_mask.shape, h_word.shape[-1])
        fused[text.word_mask] = h_word                           # [B, T, d]
        emissions = self.emission(torch.cat([text.words, fused], dim=-1))
        return MNEROutput(emissions, text.word_mask)

    # -- what it read ------------------------------------------------------------------
    @torch.no_grad()
    def explain(self, batch: Batch) -> list[Evidence]:
        """Per word and fusion layer, the cross-modal gate on each object that
        grounds it (Eq. 4, mean over channels; the objects are the detections,
        or the whole image of a tweet without any), with ``aux_sources`` the
        gate on each aux word that describes it, and the word self-attention
        (Eq. 1, mean over heads)."""
        self.check_explainable()
        self(batch)
        objects, words = node_sources(batch, schema.OBJECT), word_sources(batch)
        aux = node_sources(batch, schema.AUX) if self.aux_reader is not None else [[] for _ in objects]
        evidence = [Evidence(self.name, list(w), reads_image=True, image_used=bool(o) or bool(a))
                    for w, o, a in zip(self.words_of(batch), objects, aux)]
        for number, layer in enumerate(self.layers, 1):
            if self.aux_reader is not None:
                gate = layer.gate[MODALITIES[schema.AUX][1]]
                rows = edge_rows(batch, gate._edge_index, gate._alpha, schema.AUX)
                for e, g, a in zip(evidence, rows, aux):
                    if a:
                        e.gates.append(Gate(f'layer {number} cross-modal gate (aux word -> word, Eq. 4)', a,
                                            gate_rows(g)))
            gate = layer.gate[_GROUNDS]
            gates = edge_rows(batch, gate._edge_index, gate._alpha, schema.OBJECT)
            attention = layer.attention[_WORD_INTRA]
            weights = edge_rows(batch, attention._edge_index, attention._alpha.mean(-1), schema.WORD)
            for e, g, a, o, w in zip(evidence, gates, weights, objects, words):
                if o:
                    e.gates.append(Gate(f'layer {number} cross-modal gate (object -> word, Eq. 4)', o,
                                        gate_rows(g)))
                e.attention.append(Attention(f'layer {number} word self-attention (Eq. 1)', w,
                                             attention_rows(a)))
        for e in evidence:
            if not e.image_used:
                e.notes.append('no usable image: no visual node, a text-only Transformer')
        return evidence
