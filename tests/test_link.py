"""Analytic tests of the link loss (paper eqs. 3-6), regions and link validation."""

from __future__ import annotations

import re

import pytest
import torch

from link_core.errors import ConfigError
from link_core.interface import GeneratorDefaults
from link_core.link import (
    BoxRegion,
    MaskRegion,
    build_links,
    change_share,
    in_out_terms,
    leak_fraction,
    link_loss,
    masked_mse,
    overlapping_regions,
    parse_axes,
    perturb_ws,
)

W_DIM, RES = 8, 16
BOX = (0.25, 0.25, 0.75, 0.75)  # pixel-aligned at 16: rows/cols 4..11


class ToyG(GeneratorDefaults, torch.nn.Module):
    """image = inside·tanh(A·w[link]) + outside·(tanh(B·w[rest]) + k·tanh(C·w[link]))."""

    def __init__(self, link_axes=(0, 1, 2), coupling: float = 0.0):
        super().__init__()
        self.link = list(link_axes)
        self.rest = [i for i in range(W_DIM) if i not in self.link]
        self.a = torch.nn.Parameter(torch.randn(3, len(self.link)))
        self.b = torch.nn.Parameter(torch.randn(3, len(self.rest)))
        self.c = torch.nn.Parameter(torch.randn(3, len(self.link)))
        self.k = torch.nn.Parameter(torch.tensor(float(coupling)))
        self.mask = BoxRegion((BOX,)).mask(RES, RES)
        self.calls = 0

    def synthesis(self, ws, c=None, noise_mode="const"):
        self.calls += 1
        w = ws[:, 0]
        inside = torch.tanh(w[:, self.link] @ self.a.T)[:, :, None, None]
        outside = torch.tanh(w[:, self.rest] @ self.b.T) + self.k * torch.tanh(
            w[:, self.link] @ self.c.T
        )
        img = inside * self.mask + outside[:, :, None, None] * (1 - self.mask)
        return {"image": img, "small": torch.nn.functional.avg_pool2d(img, 2)}


def _links(axes=(0, 1, 2)):
    return build_links([{"name": "part", "axes": list(axes), "region": {"box": list(BOX)}}], W_DIM)


def _render(G):
    return lambda ws, c: G.synthesis(ws, c)


def test_decoupled_generator_gives_zero_loss():
    G = ToyG(coupling=0.0)
    ws = torch.randn(4, 3, W_DIM)
    res = link_loss(_render(G), ws, _links(), alpha=1.0)
    assert res.total.item() == pytest.approx(0.0, abs=1e-10)
    assert set(res.terms) == {"link/part/image/in", "link/part/image/out"}
    assert G.calls == 1  # x, x1 and x2 of every link in one batched render


def test_coupled_generator_gives_positive_out_term_only():
    G = ToyG(coupling=1.0)
    res = link_loss(_render(G), torch.randn(4, 3, W_DIM), _links())
    assert res.terms["link/part/image/out"].item() > 1e-3  # eq. 4 sees the leak
    assert res.terms["link/part/image/in"].item() == pytest.approx(0.0, abs=1e-10)


def test_gradients_reach_only_the_coupling():
    G = ToyG(coupling=0.5)
    res = link_loss(_render(G), torch.randn(4, 3, W_DIM), _links())
    res.total.backward()
    assert G.k.grad.abs().item() > 0 and G.c.grad.abs().sum().item() > 0
    # The region's own mapping and the background's mapping are already linked correctly:
    assert G.a.grad.abs().max().item() < 1e-6 * G.c.grad.abs().max().item()
    assert G.b.grad.abs().max().item() < 1e-6 * G.c.grad.abs().max().item()


def test_weights_and_lambdas_scale_the_total():
    G = ToyG(coupling=1.0)
    ws = torch.randn(4, 3, W_DIM)
    torch.manual_seed(0)
    base = link_loss(_render(G), ws, _links(), lambda_out=1.0).total
    torch.manual_seed(0)
    scaled = link_loss(_render(G), ws, _links(), lambda_out=3.0, maps={"image": 2.0}).total
    assert scaled.item() == pytest.approx(6 * base.item(), rel=1e-5)


def test_second_map_at_another_resolution_uses_a_resized_mask():
    G = ToyG(coupling=1.0)
    res = link_loss(_render(G), torch.randn(2, 3, W_DIM), _links(), maps={"image": 1, "small": 1})
    assert "link/part/small/out" in res.terms and res.terms["link/part/small/out"] > 0
    assert res.terms["link/part/small/in"].item() == pytest.approx(0.0, abs=1e-10)


def test_leak_fraction_is_the_wrong_sides_share_and_scale_free():
    x = torch.zeros(3, 3, RES, RES)
    m = BoxRegion((BOX,)).mask(RES, RES).expand(3, -1, -1, -1)
    inside_only = x + m  # changes only inside the region
    assert leak_fraction(inside_only, x, 1 - m).item() == pytest.approx(0.0, abs=1e-6)
    assert leak_fraction(inside_only, x, m).item() == pytest.approx(1.0, abs=1e-5)
    mixed = x + m + 0.5 * (1 - m)  # per-pixel means: 1 inside, 0.25 outside -> 0.2 leaks
    assert leak_fraction(mixed, x, 1 - m).item() == pytest.approx(0.2, abs=1e-5)
    # Shrinking every change (what a collapsing generator does) does not lower it:
    assert leak_fraction(0.1 * mixed, x, 1 - m).item() == pytest.approx(0.2, abs=1e-3)
    # A sample whose region is out of view says nothing about where a change belongs:
    m_hidden = m.clone()
    m_hidden[0] = 0
    per_visible = leak_fraction(mixed[1:], x[1:], 1 - m_hidden[1:])
    assert leak_fraction(mixed, x, 1 - m_hidden).item() == pytest.approx(per_visible.item())


def test_change_share_sums_the_change_where_per_pixel_means_hide_it():
    """A small part's edit that also moves a wide area a little: per pixel the outside looks
    quiet, summed it holds most of the change (what the edit's heat map shows)."""
    x = torch.zeros(2, 3, RES, RES)
    m = BoxRegion(((0.25, 0.25, 0.5, 0.5),)).mask(RES, RES).expand(2, -1, -1, -1)  # 16 px
    edit = x + m + 0.5 * (1 - m)  # 1 inside, 0.25 per pixel on the other 240 pixels
    assert leak_fraction(edit, x, 1 - m).item() == pytest.approx(0.2, abs=1e-5)
    share = change_share(edit, x, m)
    assert share.shape == (2,)
    assert share[0].item() == pytest.approx(16 / (16 + 0.25 * 240), abs=1e-5)  # 0.21
    assert change_share(x + m, x, m)[0].item() == pytest.approx(1.0, abs=1e-6)
    assert change_share(x, x, m)[0].item() == 0.0  # nothing changed: no share anywhere
    # The summed leak (link.form=share's eq. 4) is the share outside: 1 − the share inside.
    summed = leak_fraction(edit, x, 1 - m, summed=True).item()
    assert summed == pytest.approx(1 - share[0].item(), abs=1e-5)  # 0.79 where per pixel 0.2
    assert leak_fraction(0.1 * edit, x, 1 - m, summed=True).item() == pytest.approx(summed)


def test_margin_hinges_each_samples_share_so_a_local_enough_sample_adds_no_gradient():
    x = torch.zeros(2, 3, RES, RES)
    m = BoxRegion((BOX,)).mask(RES, RES).expand(2, -1, -1, -1)
    # Sample 0 leaks 0.2 (per pixel), sample 1 leaks 0.02.
    scale = torch.tensor([0.5, 0.1414]).view(2, 1, 1, 1).requires_grad_(True)
    edit = x + m + scale * (1 - m)
    shares = [leak_fraction(edit[i : i + 1], x[:1], 1 - m[:1]).item() for i in range(2)]
    assert shares[0] == pytest.approx(0.2, abs=1e-4) and shares[1] == pytest.approx(0.02, abs=1e-3)
    hinged = leak_fraction(edit, x, 1 - m, margin=0.05)
    assert hinged.item() == pytest.approx((0.2 - 0.05) / 2, abs=1e-4)  # sample 1 adds 0
    (grad,) = torch.autograd.grad(hinged, scale)
    assert grad[0].item() > 0 and grad[1].item() == 0.0
    # Through the loss: the hinge lowers every share term, never raises one.
    G = ToyG(coupling=1.0)
    ws = torch.randn(4, 3, W_DIM)
    res = {}
    for margin in (0.0, 0.05):
        torch.manual_seed(0)
        res[margin] = link_loss(_render(G), ws, _links(), form="share", margin=margin).terms
    for name, value in res[0.0].items():
        assert res[0.05][name] <= value + 1e-7, name
    assert res[0.05]["link/part/image/out"] < res[0.0]["link/part/image/out"]


def test_share_form_measures_eq4_on_summed_change_and_eq3_per_pixel():
    G = ToyG(coupling=1.0)
    ws = torch.randn(4, 3, W_DIM)
    res = {}
    for form in ("relative", "share"):
        torch.manual_seed(0)  # the same perturbations
        res[form] = link_loss(_render(G), ws, _links(), form=form)
    terms = {form: r.terms for form, r in res.items()}
    assert terms["share"]["link/part/image/in"] == terms["relative"]["link/part/image/in"]
    # eq. 4: the share of x₁'s summed change outside the region (a quarter of the image).
    x, x1 = res["share"].original["image"], res["share"].perturbed["image"][:4]
    m = BoxRegion((BOX,)).mask(RES, RES).expand(4, -1, -1, -1)
    outside = 1 - change_share(x1, x, m).mean().item()
    assert terms["share"]["link/part/image/out"].item() == pytest.approx(outside, abs=1e-5)
    assert terms["share"]["link/part/image/out"] > terms["relative"]["link/part/image/out"]


def test_share_fixed_has_shares_value_but_never_rewards_a_bigger_change_inside():
    """d(share)/d(inside change) < 0: ``share`` can be lowered by growing the part's own
    change. ``share_fixed`` detaches the whole change: same value, no such pull."""
    x = torch.zeros(1, 3, RES, RES)
    m = BoxRegion((BOX,)).mask(RES, RES)[None]
    grads = {}
    for form in ("share", "share_fixed"):
        gain_in = torch.tensor(1.0, requires_grad=True)
        gain_out = torch.tensor(0.3, requires_grad=True)
        x1 = x + 0.5 * (gain_in * m + gain_out * (1 - m))  # the link's edit, partly outside
        value = leak_fraction(x1, x, 1 - m, summed=True, fixed_total=form == "share_fixed")
        value.backward()
        grads[form] = (value.item(), gain_in.grad.item(), gain_out.grad.item())
    assert grads["share"][0] == pytest.approx(grads["share_fixed"][0])
    assert grads["share"][1] < 0  # share: a bigger inside change lowers the loss
    assert grads["share_fixed"][1] == 0  # share_fixed: only the outside change is pushed
    assert grads["share_fixed"][2] > 0
    G = ToyG(coupling=1.0)
    ws = torch.randn(4, 3, W_DIM)
    totals = {}
    for form in ("share", "share_fixed"):
        torch.manual_seed(0)
        totals[form] = link_loss(_render(G), ws, _links(), form=form).total.item()
    assert totals["share"] == pytest.approx(totals["share_fixed"], rel=1e-6)


def test_share_pooled_counts_views_that_hide_the_region_and_keeps_their_gradient():
    """Per sample, a view whose region is empty is skipped and one whose region is a sliver
    has a share near 1 with almost no gradient; pooled, both add their whole change to the
    wrong side of one ``Σ wrong / Σ whole`` share and are pushed back."""
    x = torch.zeros(3, 3, RES, RES)
    box = BoxRegion((BOX,)).mask(RES, RES)[0]
    sliver = torch.zeros_like(box)
    sliver[..., 0, 0] = 1.0  # one pixel of the part in view
    m = torch.stack([box, sliver, torch.zeros_like(box)])  # front, sliver, wholly hidden
    gain_back = torch.tensor(0.3, requires_grad=True)
    edit = torch.stack([box, (1 - sliver) * gain_back, torch.ones_like(box) * gain_back])
    x1 = x + 0.5 * edit  # the front view changes only the part, the others a tint elsewhere
    wrong = 1 - m
    per_sample = leak_fraction(x1, x, wrong, summed=True)
    pooled = leak_fraction(x1, x, wrong, summed=True, groups=torch.zeros(3, dtype=torch.long))
    sq = 0.25 * edit.square() * 3  # the squared change summed over the 3 channels
    assert pooled.item() == pytest.approx(((sq * wrong).sum() / sq.sum()).item(), rel=1e-5)
    assert 0 < pooled.item() < 1
    # the hidden view is skipped per sample: the front (0) and the sliver (~1) average
    assert per_sample.item() == pytest.approx(0.5, abs=1e-3)
    (g_per,) = torch.autograd.grad(per_sample, gain_back, retain_graph=True)
    (g_pool,) = torch.autograd.grad(pooled, gain_back)
    assert g_pool.item() > 100 * abs(g_per.item())  # pooled pulls the tint back
    G = ToyG(coupling=1.0)
    ws = torch.randn(4, 3, W_DIM)
    res = link_loss(_render(G), ws, _links(), form="share_pooled")
    assert res.total.item() > 0 and "link/part/image/out" in res.terms


def test_share_mixed_pulls_back_an_escaped_edit_and_keeps_each_small_edits_pull():
    """``share_mixed``: eq. 4 is the mean of the per-sample and the pooled share. An edit with
    nothing inside its part (the hat toggled by the eyes' axes) has a per-sample share of 1
    and no gradient; the mixed form pulls it back. A small local edit beside it keeps at
    least half of the per-sample pull, which pooling alone gives to the big edit."""
    box = BoxRegion((BOX,)).mask(RES, RES)[0]
    mask = torch.stack([box, box])
    escaped = torch.tensor(0.5, requires_grad=True)  # sample 1's change, all outside
    leak = torch.tensor(0.02, requires_grad=True)  # sample 0's small leak outside
    edit = torch.stack([0.1 * box + leak * (1 - box), escaped * (1 - box)])
    x = torch.zeros(2, 3, RES, RES)
    x1, x2 = x + edit, x.clone()
    out = {f: in_out_terms(x, x1, x2, mask, f)[1] for f in ("share", "share_pooled", "share_mixed")}
    assert out["share_mixed"].item() == pytest.approx(
        0.5 * (out["share"] + out["share_pooled"]).item(), rel=1e-6
    )
    grads = {f: torch.autograd.grad(v, (escaped, leak), retain_graph=True) for f, v in out.items()}
    assert abs(grads["share"][0].item()) < 1e-6  # per sample: the escaped edit is let be
    assert grads["share_mixed"][0].item() > 1e-3  # mixed: pulled back
    assert grads["share_pooled"][1].item() < 0.1 * grads["share"][1].item()  # pooled: lost
    assert grads["share_mixed"][1].item() >= 0.5 * grads["share"][1].item()  # mixed: kept
    G = ToyG(coupling=1.0)
    res = link_loss(_render(G), torch.randn(4, 3, W_DIM), _links(), form="share_mixed")
    assert 0 < res.terms["link/part/image/out"].item() < 1
    # ``mix`` weights the per-sample share: 1 is ``share``, 0 ``share_pooled``, 0.75 between
    for mix, expect in ((1.0, out["share"]), (0.0, out["share_pooled"])):
        assert in_out_terms(x, x1, x2, mask, "share_mixed", mix=mix)[1].item() == pytest.approx(
            expect.item(), rel=1e-6
        )
    three_quarters = in_out_terms(x, x1, x2, mask, "share_mixed", mix=0.75)[1]
    with pytest.raises(ValueError, match="mix"):
        link_loss(_render(G), torch.randn(4, 3, W_DIM), _links(), form="share_mixed", mix=1.5)
    assert three_quarters.item() == pytest.approx(
        (0.75 * out["share"] + 0.25 * out["share_pooled"]).item(), rel=1e-6
    )


def test_share_groups_pool_each_samples_views():
    """``groups``: rows of one id are one sample seen from several cameras; eq. 4 is each
    sample's ``Σ_views wrong / Σ_views whole``, averaged over samples. A view that hides
    the region counts against its own sample, with that sample's gradient."""
    box = BoxRegion((BOX,)).mask(RES, RES)[0]
    hidden = torch.zeros_like(box)
    gain_back = torch.tensor(0.3, requires_grad=True)
    # sample 0: front (only the part changes) + back (a tint); sample 1: front with a leak
    m = torch.stack([box, hidden, box])
    leak = torch.ones_like(box) * 0.2
    edit = torch.stack([box, torch.ones_like(box) * gain_back, box + (1 - box) * leak])
    x = torch.zeros(3, 3, RES, RES)
    x1 = x + edit
    wrong = 1 - m
    groups = torch.tensor([0, 0, 1])
    grouped = leak_fraction(x1, x, wrong, summed=True, groups=groups)
    sq = edit.square() * 3
    share = [(sq[r] * wrong[r]).sum() / sq[r].sum() for r in ([0, 1], [2])]
    assert grouped.item() == pytest.approx(((share[0] + share[1]) / 2).item(), rel=1e-5)
    assert 0.1 < share[0].item() < 1  # the back's tint is a large part of sample 0's change
    one = leak_fraction(x1, x, wrong, summed=True, groups=torch.zeros(3, dtype=torch.long))
    assert one.item() == pytest.approx(((sq * wrong).sum() / sq.sum()).item(), rel=1e-5)
    per_sample = leak_fraction(x1, x, wrong, summed=True)  # the hidden view is skipped
    (g_grouped,) = torch.autograd.grad(grouped, gain_back, retain_graph=True)
    (g_per,) = torch.autograd.grad(per_sample, gain_back, allow_unused=True, materialize_grads=True)
    assert g_grouped.item() > 0 and g_per.item() == 0  # only the grouped form pulls it back
    G = ToyG(coupling=1.0)
    ws = torch.randn(2, 3, W_DIM).repeat_interleave(2, dim=0)
    ids = torch.arange(2).repeat_interleave(2)
    res = link_loss(_render(G), ws, _links(), form="share", groups=ids)
    assert res.total.item() > 0 and torch.isfinite(res.total)
    with pytest.raises(ValueError, match="share form"):
        link_loss(_render(G), ws, _links(), form="absolute", groups=ids)
    with pytest.raises(ValueError, match="one id per row"):
        link_loss(_render(G), ws, _links(), form="share", groups=ids[:3])


def test_relative_form_cannot_be_met_by_shrinking_the_generator():
    G = ToyG(coupling=1.0)
    ws = torch.randn(4, 3, W_DIM)
    totals = {}
    for form in ("absolute", "relative"):
        for scale in (1.0, 0.1):
            torch.manual_seed(0)
            render = lambda w, c, s=scale: {"image": s * G.synthesis(w, c)["image"]}  # noqa: E731
            totals[form, scale] = link_loss(render, ws, _links(), form=form).total.item()
    assert totals["absolute", 0.1] == pytest.approx(0.01 * totals["absolute", 1.0], rel=1e-4)
    assert totals["relative", 0.1] == pytest.approx(totals["relative", 1.0], rel=1e-2)
    assert 0.0 < totals["relative", 1.0] < 2.0  # two shares, one per perturbation
    with pytest.raises(ValueError, match="form"):
        link_loss(_render(G), ws, _links(), form="ratio")


def test_perturbation_is_identical_on_every_ws_row():
    ws = torch.randn(2, 5, W_DIM)
    ws[:, 3:] += 10  # style-mixed rows differ; the offset must still be the same
    axis_mask = torch.zeros(W_DIM)
    axis_mask[:3] = 1
    out = perturb_ws(ws, axis_mask, torch.randn(2, W_DIM), alpha=0.5)
    delta = out - ws
    assert torch.allclose(delta, delta[:, :1].expand_as(delta))
    assert delta[..., 3:].abs().max() == 0


def test_resampling_takes_each_side_from_the_source_w():
    """With ``sources``, x₁ takes the link's axes from another w and x₂ the complement's."""
    G = ToyG(coupling=1.0)
    ws, sources = torch.randn(3, 2, W_DIM), torch.randn(3, 2, W_DIM)
    seen = []
    render = lambda w, c: (seen.append(w), G.synthesis(w, c))[1]  # noqa: E731
    res = link_loss(render, ws, _links(), sources=sources)
    x, x1, x2 = seen[0].chunk(3)
    assert torch.equal(x1[..., :3], sources[..., :3]) and torch.equal(x1[..., 3:], ws[..., 3:])
    assert torch.equal(x2[..., :3], ws[..., :3]) and torch.equal(x2[..., 3:], sources[..., 3:])
    assert res.terms["link/part/image/out"].item() > 1e-3  # the coupling still leaks
    assert res.terms["link/part/image/in"].item() == pytest.approx(0.0, abs=1e-10)
    # Resampling towards oneself moves nothing: no change, no loss.
    same = link_loss(_render(G), ws, _links(), sources=ws, form="relative")
    assert same.total.item() == pytest.approx(0.0, abs=1e-10)
    with pytest.raises(ValueError, match="sources"):
        link_loss(_render(G), ws, _links(), sources=sources[:2])


def test_perturbed_outputs_for_d_and_multiple_links():
    links = build_links(
        [
            {"name": "a", "axes": [0, 2], "region": {"box": [0, 0, 0.5, 0.5]}},
            {
                "name": "b",
                "axes": [2, 4],
                "region": {"boxes": [[0.5, 0.5, 1, 1], [0, 0.5, 0.5, 1]]},
            },
        ],
        W_DIM,
    )
    G = ToyG()
    res = link_loss(_render(G), torch.randn(3, 2, W_DIM), links, c=torch.zeros(3, 0))
    assert res.perturbed["image"].shape == (2 * 2 * 3, 3, RES, RES)
    assert res.perturbed_c.shape == (12, 0)
    assert {n.split("/")[1] for n in res.terms} == {"a", "b"}


def test_link_weight_scales_only_its_own_terms():
    """A per-link weight multiplies that link's L_i and L_iᶜ in the total, nothing else."""
    specs = [
        {"name": "a", "axes": [0, 2], "region": {"box": [0, 0, 0.5, 0.5]}},
        {"name": "b", "axes": [2, 4], "region": {"box": [0.5, 0.5, 1, 1]}},
    ]
    G, ws = ToyG(), torch.randn(3, 2, W_DIM)

    def loss(weight_b: float):
        specs[1]["weight"] = weight_b
        links = build_links(specs, W_DIM)
        return link_loss(_render(G), ws, links, generator=torch.Generator().manual_seed(0))

    one, three = loss(1.0), loss(3.0)
    assert build_links(specs, W_DIM)[1].weight == 3.0
    for name, value in one.terms.items():
        assert torch.allclose(value, three.terms[name])
    term_b = sum(v for n, v in one.terms.items() if n.startswith("link/b/"))
    assert torch.allclose(three.total, one.total + 2 * term_b, rtol=1e-5)
    assert term_b > 0


def test_box_mask_is_exact_on_the_grid_and_soft_between_pixels():
    m = BoxRegion((BOX,)).mask(RES, RES)[0, 0]
    assert m.sum().item() == 64 and set(m.unique().tolist()) == {0.0, 1.0}
    soft = BoxRegion(((0.0, 0.0, 0.5 + 0.5 / RES, 1.0),)).mask(RES, RES)[0, 0]
    assert soft[:, 8].unique().tolist() == [0.5]


def test_mask_region_uses_the_provider_per_sample():
    def provider(outputs, c):
        return (outputs["image"].mean(1, keepdim=True) > 0).float()

    region = MaskRegion("bright", provider)
    img = torch.cat([torch.ones(1, 3, 8, 8), -torch.ones(1, 3, 8, 8)])
    m = region({"image": img}, None)
    assert m[0].sum() == 64 and m[1].sum() == 0


def test_masked_mse_is_per_pixel_mean_and_zero_for_empty_masks():
    a, b = torch.zeros(2, 3, 4, 4), torch.ones(2, 3, 4, 4)
    mask = torch.zeros(2, 1, 4, 4)
    mask[0, :, :2] = 1
    assert masked_mse(a, b, mask).tolist() == [1.0, 0.0]


@pytest.mark.parametrize(
    "specs, message",
    [
        ([{"name": "x", "axes": [0, 99], "region": {"box": [0, 0, 1, 1]}}], "outside [0, 8)"),
        (
            [
                {"name": "x", "axes": [0, 4], "region": {"box": [0, 0, 0.5, 0.5]}},
                {"name": "y", "axes": [3, 6], "region": {"box": [0.5, 0.5, 1, 1]}},
            ],
            "already linked to 'x'",
        ),
        ([{"name": "x", "axes": [0, 2], "region": {"box": [0.5, 0.5, 0.5, 0.8]}}], "is empty"),
        ([{"name": "x", "axes": [0, 2], "region": {"box": [-0.1, 0, 0.5, 1.2]}}], "outside [0, 1]"),
        ([{"name": "x", "axes": [0, 2], "region": {"boxes": []}}], "non-empty"),
        ([{"name": "x", "axes": [0, 8], "region": {"box": [0, 0, 1, 1]}}], "all 8 axes"),
        ([{"name": "x", "axes": [0, 2], "region": {"mask": "nope"}}], "unknown mask provider"),
        ([{"name": "x", "axes": [0, 2], "region": {"cone": 1}}], "unknown region kind"),
        ([{"name": "x", "axes": [0, 2]}], "missing 'region'"),
        ([{"name": "x", "axes": [0, 2], "region": {"box": [0, 0, 1, 1]}, "wat": 1}], "wat"),
        (
            [{"name": "x", "axes": [0, 2], "region": {"box": [0, 0, 1, 1]}, "weight": 0}],
            "link.links[0] (x).weight: expected a number > 0",
        ),
    ],
)
def test_invalid_links_are_refused(specs, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_links(specs, W_DIM)


def test_axes_forms():
    assert parse_axes([0, 4], "x") == (0, 1, 2, 3)
    assert parse_axes([5, 1, 3], "x") == (1, 3, 5)
    assert parse_axes("2:4", "x") == (2, 3)
    assert parse_axes({"indices": [7, 1]}, "x") == (1, 7)


def test_overlapping_boxes_warn_and_touching_ones_do_not():
    """Two links owning the same pixels hold each other still there (eq. 3): warn."""
    import warnings

    touching = [
        {"name": "a", "axes": [0, 2], "region": {"box": [0, 0, 0.5, 0.5]}},
        {"name": "b", "axes": [2, 4], "region": {"boxes": [[0.5, 0, 1, 1], [0, 0.5, 1, 1]]}},
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert overlapping_regions(build_links(touching, W_DIM)) == []
    touching[1]["region"] = {"boxes": [[0.5, 0, 1, 1], [0.25, 0.25, 1, 1]]}
    with pytest.warns(UserWarning, match=r"'a' and 'b' overlap \(\(0.25, 0.25, 0.5, 0.5\)\)"):
        links = build_links(touching, W_DIM)
    assert overlapping_regions(links) == [("a", "b", (0.25, 0.25, 0.5, 0.5))]


def test_the_config_and_the_loss_know_the_same_forms():
    """config.py stays torch-free, so it keeps its own copy of the loss forms: they must agree."""
    from link_core.link import LOSS_FORMS as loss_forms
    from link_core.train.config import LOSS_FORMS as config_forms

    assert config_forms == loss_forms
