"""The install instructions: a CPU machine gets the CPU-only torch wheels, and the README and
environment.yml name the same index, inside the pins pyproject.toml sets."""
import re
import tomllib

import yaml
from conftest import ROOT

CPU_INDEX = 'https://download.pytorch.org/whl/cpu'


def test_readme_and_environment_install_cpu_only_torch_from_one_index():
    readme = (ROOT / 'README.md').read_text()
    assert f'pip install torch torchvision --index-url {CPU_INDEX}' in readme
    environment = yaml.safe_load((ROOT / 'environment.yml').read_text())
    [pip] = [d['pip'] for d in environment['dependencies'] if isinstance(d, dict)]
    assert pip == [f'--extra-index-url {CPU_INDEX}', '-e .[dev]']
    # The README's version range is the pin that pip resolves (a +cpu build satisfies '<=2.14.1').
    pins = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']['dependencies']
    [torch_pin] = [p for p in pins if p.startswith('torch>=')]
    low, high = re.fullmatch(r'torch>=([\d.]+),<=([\d.]+).*', torch_pin.split('#')[0].strip()).groups()
    assert f'torch {low} – {high}' in readme


def test_the_notebook_extra_installs_what_the_readme_runs_it_with():
    extras = tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']['optional-dependencies']
    assert any(req.startswith('jupyterlab') for req in extras['notebook'])
    assert any(req.startswith('ipykernel') for req in extras['notebook'])
    readme = (ROOT / 'README.md').read_text()
    assert "pip install -e '.[notebook]'" in readme and 'jupyter lab graphs/inspect.ipynb' in readme
    assert (ROOT / 'graphs' / 'inspect.ipynb').is_file()


def test_a_virtual_environment_in_the_checkout_is_ignored():
    assert '.venv/' in (ROOT / '.gitignore').read_text().splitlines()
