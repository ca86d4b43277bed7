"""The one list of built-in model names, read without torch."""
import subprocess
import sys

from graphmner import models
from graphmner.cli import MODEL_NAMES as CLI_NAMES
from graphmner.models.names import BUILTIN_MODELS, MODEL_NAMES


def test_every_listed_name_is_its_class_name():
    assert CLI_NAMES is MODEL_NAMES and list(MODEL_NAMES) == sorted(BUILTIN_MODELS)
    for name in MODEL_NAMES:
        cls = models.model_class(name)
        assert issubclass(cls, models.MNERModel) and cls.name == name


def test_importing_the_registry_loads_no_model_nor_torch():
    code = ('import sys; from graphmner import models; from graphmner.cli import MODEL_NAMES; '
            'print(models.available() == list(MODEL_NAMES), "torch" in sys.modules, '
            'any(m.startswith("graphmner.models.") and m != "graphmner.models.names" for m in sys.modules))')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ['True', 'False', 'False'], result.stderr


def test_a_registered_model_joins_and_a_taken_name_is_refused():
    class Other(models.BertCRF):
        name = 'other-crf'

    class Impostor(models.BertCRF):
        name = 'umgf'

    try:
        assert models.register(Other) is Other and 'other-crf' in models.available()
        assert models.model_class('other-crf') is Other
    finally:
        models._REGISTRY.pop('other-crf', None)
    try:
        models.register(Impostor)
    except ValueError as error:
        assert str(error) == "Model name 'umgf' is taken by UMGF"
    else:
        raise AssertionError('a built-in name was taken')
