"""The schema's relations against the models' declarations: each is read by the
models that declare it (and they do read its edges), or it is display-only."""
import re

import pytest
import torch
from conftest import batch_for, fake_features

from graphmner import models
from graphmner.data.conll import Tweet
from graphmner.graph import schema
from graphmner.graph.builder import build_graph


def declared() -> dict:
    """Relation -> the models whose ``relations`` (or ``aux_relations``, read with aux_sources) declare it."""
    out: dict = {}
    for name in models.available():
        cls = models.model_class(name)
        for relation in (*cls.relations, *cls.aux_relations):
            out.setdefault(relation, []).append(name)
    return {relation: tuple(sorted(names)) for relation, names in out.items()}


def test_every_relation_is_read_by_a_model_or_display_only():
    assert declared() == schema.READ_BY
    assert set(schema.READ_BY).isdisjoint(schema.DISPLAY_ONLY)
    assert set(schema.READ_BY) | set(schema.DISPLAY_ONLY) == set(schema.EDGE_TYPES)
    assert set(schema.RULES) == set(schema.EDGE_TYPES)


def test_the_schema_table_says_what_the_declarations_and_rules_say():
    """Each relation's row in graph/schema.py's table: 'stored' or 'on demand' as its rule, and
    the models that read it or 'display'."""
    rows = {}
    for line in schema.__doc__.splitlines():
        found = re.match(r"``(\('\w+', '\w+', '\w+'\))``\s.*\s(stored|on demand)\s+(\w+(?:, \w+)*)", line)
        if found:
            rows[eval(found[1])] = (found[2], found[3])
    assert set(rows) == set(schema.EDGE_TYPES)
    for relation, (stored, read_by) in rows.items():
        assert (stored == 'stored') == (schema.RULES[relation] == 'stored'), relation
        assert read_by == (', '.join(schema.READ_BY[relation]) if relation in schema.READ_BY else 'display')


TWEETS = [Tweet('a', ['Handsome', 'Rob', 'after', 'a', 'fish', 'dinner'], ['O', 'B-PER', 'O', 'O', 'O', 'O']),
          Tweet('b', ['Kawhi', 'Leonard', 'wins'], ['B-PER', 'I-PER', 'O'])]


@pytest.mark.parametrize('relation, name', [(r, n) for r, names in schema.READ_BY.items() for n in names],
                         ids=lambda v: v if isinstance(v, str) else schema.edge_type_name(v))
def test_a_declared_relation_is_read(tiny_encoder, relation, name):
    """Without the relation's edges the model's emissions change: the declaration is true."""
    torch.manual_seed(0)
    reads_aux = relation in models.model_class(name).aux_relations
    options = {'aux_sources': ['caption']} if reads_aux else {}
    model = models.build(name, encoder=tiny_encoder, **options).eval()
    grounds = torch.tensor([[0, 2], [1, 0]])  # objects 0 and 2 grounded, object 1 in no phrase
    aux = [('a', 'caption'), ('fish', 'caption')]
    graphs = [build_graph(t, fake_features(num_objects=3, dim=2048, seed=i), grounds=grounds, aux=aux)
              for i, t in enumerate(TWEETS)]
    batch = batch_for(model, graphs)
    assert batch[relation].num_edges > 0
    with torch.no_grad():
        emissions = model(batch).emissions
        batch[relation].edge_index = batch[relation].edge_index[:, :0]
        assert not torch.allclose(model(batch).emissions, emissions)
