"""Reusable layers: the batched CRF, the text encoder and graph attention operators."""
from .aux_reader import AuxReader
from .crf import CRF, bio_constraints
from .cross_modal_gate import CrossModalGate
from .encoder import EncoderOutput, TextEncoder
from .graph_attention import GraphMultiHeadAttention

__all__ = ['AuxReader', 'CRF', 'CrossModalGate', 'EncoderOutput', 'GraphMultiHeadAttention', 'TextEncoder',
           'bio_constraints']
