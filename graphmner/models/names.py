"""The built-in models by registry name: the one list of them.

Plain strings, no import: the command line reads the names for ``--help``
without loading torch, and :mod:`graphmner.models` imports a model's module
only when that model is asked for.
"""
from __future__ import annotations

#: Registry name -> ``module:class`` under :mod:`graphmner.models`.
BUILTIN_MODELS: dict[str, str] = {
    'bert-crf': 'bert_crf:BertCRF',
    'gmf': 'gmf:GMF',
    'ita': 'ita:ITA',
    'maf': 'maf:MAF',
    'umgf': 'umgf:UMGF',
}

#: The built-in names, sorted (the choices of ``--model``).
MODEL_NAMES: tuple[str, ...] = tuple(sorted(BUILTIN_MODELS))
