"""D: shapes, normalised embeddings, margin heads."""

from __future__ import annotations

import math

import pytest
import torch

from anonface.models.identity import IdentityConfig, MarginHead, build_identity, to_gray


@pytest.mark.parametrize("size", [(112, 112), (112, 96)])
def test_embedding_shape_and_norm(size: tuple[int, int]) -> None:
    cfg = IdentityConfig(input_size=size, widths=(8, 16, 16, 32), units=(1, 1, 1, 1), embed_dim=24, num_classes=5)
    net, head = build_identity(cfg)
    net.eval()
    x = torch.rand(3, 3, *size) * 2 - 1
    e = net(x)
    assert e.shape == (3, 24) and e.dtype == torch.float32
    torch.testing.assert_close(e.norm(dim=1), torch.ones(3))
    # other sizes are resized
    assert net(torch.rand(2, 3, 64, 64)).shape == (2, 24)
    assert head is not None and head(e).shape == (3, 5)


def test_gray_ignores_colour() -> None:
    cfg = IdentityConfig(widths=(8, 8, 8, 8), units=(1, 1, 1, 1), embed_dim=8, gray=True)
    net, _ = build_identity(cfg)
    net.eval()
    x = torch.rand(2, 3, 112, 112) * 2 - 1
    torch.testing.assert_close(net(x), net(to_gray(x)), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("margin,m", [("cosface", 0.35), ("arcface", 0.5), ("sphereface", 4.0)])
def test_margin_values(margin: str, m: float) -> None:
    torch.manual_seed(0)
    head = MarginHead(4, 3, margin=margin, scale=10.0, m=m)
    emb = torch.randn(5, 4)
    labels = torch.randint(0, 3, (5,))
    cos = (torch.nn.functional.normalize(emb, dim=1) @ torch.nn.functional.normalize(head.weight, dim=1).T).detach()
    out = head(emb, labels).detach()
    plain = head(emb).detach()
    torch.testing.assert_close(plain, 10 * cos, atol=1e-4, rtol=1e-4)
    for i in range(5):
        for j in range(3):
            c = float(cos[i, j])
            if j != int(labels[i]):
                assert math.isclose(float(out[i, j]), 10 * c, abs_tol=1e-4)
            else:
                t = math.acos(c)
                if margin == "cosface":
                    want = c - m
                elif margin == "arcface":
                    want = math.cos(t + m)
                else:
                    k = math.floor(t * m / math.pi)
                    want = (-1) ** k * math.cos(m * t) - 2 * k
                assert math.isclose(float(out[i, j]), 10 * want, abs_tol=1e-3)
                assert float(out[i, j]) <= 10 * c + 1e-4  # a margin only makes the true class harder


def test_sphereface20_layout() -> None:
    cfg = IdentityConfig.sphereface20(num_classes=7)
    assert cfg.input_size == (112, 96) and sum(cfg.units) * 2 + 4 == 20 and cfg.embed_dim == 512
