"""FeatureStandardizer and the model hook that fits it on training graphs."""
import pytest
import torch
from conftest import fake_features

from graphmner.features.types import VisualWidths
from graphmner.graph import schema
from graphmner.graph.builder import build_graph
from graphmner.models.umgf import UMGF, UMGFConfig
from graphmner.nn.standardize import FeatureStandardizer


def test_fit_gives_the_population_mean_and_std_and_standardises():
    torch.manual_seed(0)
    x = torch.randn(500, 4) * torch.tensor([1.0, 10.0, 1e-3, 2e9]) + torch.tensor([5.0, -3.0, 0.0, 1e9])
    layer = FeatureStandardizer(4, (schema.REGION, ))
    torch.testing.assert_close(layer(x), x)  # unfitted: identity
    layer.fit(x)
    torch.testing.assert_close(layer.mean, x.double().mean(0).float())
    torch.testing.assert_close(layer.std, x.double().std(0, unbiased=False).float())
    z = layer(x)
    torch.testing.assert_close(z.mean(0), torch.zeros(4), atol=1e-4, rtol=0)
    torch.testing.assert_close(z.std(0, unbiased=False), torch.ones(4), atol=1e-4, rtol=0)
    # chunks give the same statistics as one tensor
    chunked = FeatureStandardizer(4, (schema.REGION, ))
    chunked.fit([x[:123], x[123:], x[:0]])
    torch.testing.assert_close(chunked.mean, layer.mean)
    torch.testing.assert_close(chunked.std, layer.std)


def test_constant_dimensions_keep_unit_scale_and_statistics_are_saved():
    x = torch.stack([torch.arange(6.0), torch.full((6, ), 3.0)], dim=1)  # dim 1 never varies
    layer = FeatureStandardizer(2, (schema.SCALE, ))
    layer.fit(x)
    assert layer.std[1] == 1.0 and torch.equal(layer(x)[:, 1], torch.zeros(6))
    again = FeatureStandardizer(2, (schema.SCALE, ))
    again.load_state_dict(layer.state_dict())
    assert bool(again.fitted) and torch.equal(again.mean, layer.mean)
    layer.fit(torch.zeros(0, 2))  # no rows: nothing changes
    assert torch.equal(layer.mean, again.mean)
    with pytest.raises(ValueError, match=r'rows of shape \[N, 2\], got \(3, 5\)'):
        layer.fit(torch.zeros(3, 5))


def test_model_fits_on_the_training_graphs_object_nodes(tiny_encoder, tweet):
    torch.manual_seed(0)
    model = UMGF(UMGFConfig(encoder=tiny_encoder, d_model=16, heads=2, ffn=8, visual_dim=8))
    graphs = [build_graph(tweet, fake_features(2, 8, seed=1)),
              build_graph(tweet, fake_features(3, 8, seed=2)),
              build_graph(tweet, None, widths=VisualWidths.uniform(8))]
    transform = model.graph_transform()
    model.fit_feature_statistics([transform(g.clone()) for g in graphs])
    objects = torch.cat([graphs[0][schema.OBJECT].x, graphs[1][schema.OBJECT].x])
    torch.testing.assert_close(model.standardize.mean, objects.mean(0))
    torch.testing.assert_close(model.standardize.std, objects.std(0, unbiased=False))
