"""Quality per part: region diversity, head attributes and their classifier, FID's noise."""

from __future__ import annotations

import collections
import json
import math

import pytest
import torch
from conftest import HEADS_3D

from link_core.errors import UserError
from link_core.metrics.attributes import (
    accuracy,
    frequencies,
    frequency_ratios,
    load_attribute_net,
    predict_attributes,
    readable_attributes,
    save_attribute_net,
    train_attribute_net,
)
from link_core.metrics.diversity import RegionMoments, region_diversity
from link_core.synth import HEAD_PARTS, render_views
from link_core.synth.heads import HEAD_ATTRIBUTES
from link_core.synth.render import item_attributes
from linkgan import api
from linkgan.cli import main


def test_region_diversity_is_the_masked_per_pixel_variance():
    x = torch.zeros(4, 3, 2, 2)
    x[:, :, 0, 0] = torch.tensor([0.0, 1.0, 0.0, 1.0])[:, None]  # variance 0.25 at (0, 0)
    x[:, :, 1, 1] = torch.tensor([0.0, 0.0, 0.0, 4.0])[:, None]  # variance 3 at (1, 1)
    m = torch.zeros(4, 1, 2, 2)
    m[:, :, 0, 0] = 1
    assert region_diversity(x, m) == pytest.approx(0.25)
    m[:2, :, 1, 1] = 1  # (1, 1) in the region of half the samples: weight 1/2
    assert region_diversity(x, m) == pytest.approx((0.25 + 0.5 * 3) / 1.5)
    # Streamed in batches it is the same number.
    moments = RegionMoments()
    moments.add(x[:1], m[:1])
    moments.add(x[1:], m[1:])
    assert moments.diversity() == pytest.approx(region_diversity(x, m))
    with pytest.raises(ValueError, match="2 samples"):
        region_diversity(x[:1], m[:1])


def test_head_attributes_follow_the_draw_and_show_in_the_masks():
    counts = collections.Counter(item_attributes("heads", 0, i)["hair"] for i in range(2000))
    # hair: 15 % none; of the rest 45 / 20 / 20 / 15 % (2000 draws: ±3 points)
    expected = {"none": 0.15, "cap": 0.3825, "bun": 0.17, "hat": 0.17, "cone": 0.1275}
    for value, share in expected.items():
        assert counts[value] / 2000 == pytest.approx(share, abs=0.03), value
    assert item_attributes("heads", 0, 7) == item_attributes("heads", 0, 7)
    assert set(item_attributes("heads", 3, 1)) == set(HEAD_ATTRIBUTES)
    # A head without hair shows no hair pixels; every other one does (frontal, 32²).
    from link_core.data.cameras import frontal_labels
    from link_core.synth import SYNTH_CAMERA

    idx = list(range(24))
    masks = render_views("heads", 0, idx, frontal_labels(len(idx), SYNTH_CAMERA), 32)["mask"]
    hair = HEAD_PARTS.index("hair")
    for i in idx:
        has_hair = bool((masks[i] == hair).any())
        assert has_hair == (item_attributes("heads", 0, i)["hair"] != "none"), i
    with pytest.raises(Exception, match="only heads"):
        item_attributes("scenes", 0, 0)


def _squares(n: int, seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Red or blue, small or big squares on grey: two attributes whose answer is known."""
    g = torch.Generator().manual_seed(seed)
    colour = torch.randint(0, 2, (n,), generator=g)
    size = torch.randint(0, 2, (n,), generator=g)
    images = torch.full((n, 3, 16, 16), 128, dtype=torch.uint8)
    for i in range(n):
        half = 2 if size[i] == 0 else 5
        x, y = torch.randint(half, 16 - half, (2,), generator=g).tolist()
        images[i, 0 if colour[i] == 0 else 2, y - half : y + half, x - half : x + half] = 255
    return images, {"colour": colour, "size": size}


def test_attribute_net_learns_known_attributes_and_round_trips(tmp_path):
    vocab = {"colour": ("red", "blue"), "size": ("small", "big")}
    images, labels = _squares(512, 0)
    net = train_attribute_net(images, labels, vocab, epochs=6, seed=0)
    held, held_labels = _squares(256, 1)
    predicted = predict_attributes(net, held)
    acc = accuracy(predicted, held_labels)
    assert acc["colour"] > 0.97 and acc["size"] > 0.9, acc
    freq = frequencies(predicted, vocab)
    true = frequencies(held_labels, vocab)
    assert freq["colour"]["red"] == pytest.approx(true["colour"]["red"], abs=0.05)
    # Images as floats in [-1, 1] give the same answers as uint8.
    as_float = predict_attributes(net, held.float() / 127.5 - 1)
    assert all(torch.equal(as_float[k], predicted[k]) for k in vocab)
    # Stored without code and read back to the same predictions.
    path = tmp_path / "attrs.safetensors"
    save_attribute_net(net, path, {"note": "squares"})
    loaded, card = load_attribute_net(path)
    assert card["note"] == "squares" and card["vocab"]["size"] == ["small", "big"]
    again = predict_attributes(loaded, held)
    assert all(torch.equal(again[k], predicted[k]) for k in vocab)
    path.write_bytes(b"not a safetensors file")
    assert load_attribute_net(path) is None  # a broken cache entry is rebuilt, not trusted
    with pytest.raises(ValueError, match="uint8"):
        train_attribute_net(images.float(), labels, vocab)


def test_frequency_ratios_name_a_dropped_value():
    data = {"hair": {"hat": 0.2, "cap": 0.8, "bald": 0.0}}
    model = {"hair": {"hat": 0.0, "cap": 1.0, "bald": 0.0}}
    ratios = frequency_ratios(model, data)["hair"]
    assert ratios == {"hat": 0.0, "cap": 1.25, "bald": 1.0}
    assert frequency_ratios({"hair": {"x": 0.1}}, {"hair": {"x": 0.0}})["hair"]["x"] == math.inf


def test_only_attributes_read_well_above_chance_are_readable():
    """The heads' nose at 32²: 0.56 accuracy on a 50/50 split is noise; hair (five kinds,
    the most frequent 0.3) at 0.86 and a 90/10 skin split at 0.97 are read."""
    true = {
        "hair": {"a": 0.3, "b": 0.2, "c": 0.2, "d": 0.2, "e": 0.1},
        "nose": {"cone": 0.5, "round": 0.5},
        "skin": {"natural": 0.9, "fantasy": 0.1},
    }
    acc = {"hair": 0.86, "nose": 0.56, "skin": 0.97}
    assert readable_attributes(acc, true) == ["hair", "skin"]
    # a split the classifier only matches by always answering the common value is not read
    assert readable_attributes({"skin": 0.9}, {"skin": true["skin"]}) == []


@pytest.fixture(scope="module")
def heads_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("parts") / "run"
    api.train(run, None, [*HEADS_3D, "train.kimg=0.008"], progress=False)
    return run


def test_metrics_diversity_and_attributes_on_a_3d_model(heads_run, tmp_path, monkeypatch):
    from linkgan.model import Model
    from linkgan.part_quality import attribute_check, part_diversity

    model = Model.load(heads_run)
    div = part_diversity(model.G, model.links, model.config, num=6, batch=4)
    for side in ("model", "data"):
        assert set(div[side]) == {"top"} and set(div[side]["top"]) == {"image", "depth"}
    assert div["data"]["top"]["image"] > 0.001  # real heads' hair differs head to head
    assert all(v >= 0 for side in ("model", "data") for v in div[side]["top"].values())

    cache = tmp_path / "attrs"
    check = attribute_check(
        model.G, model.config, num=8, progress=False, cache=cache, classifier=(96, 32)
    )
    assert set(check["ratio"]) == set(HEAD_ATTRIBUTES)
    assert set(check["ratio"]["hair"]) == set(HEAD_ATTRIBUTES["hair"])
    for per in check["model"].values():
        assert sum(per.values()) == pytest.approx(1.0)
    assert check["worst"]["attribute"] in (check["readable"] or HEAD_ATTRIBUTES)
    assert set(check["readable"]) <= set(HEAD_ATTRIBUTES)
    stored = list(cache.glob("*.safetensors"))
    assert len(stored) == 1  # trained once, then read from the cache
    before = stored[0].stat().st_mtime_ns
    again = attribute_check(
        model.G, model.config, 8, progress=False, cache=cache, classifier=(96, 32)
    )
    assert stored[0].stat().st_mtime_ns == before and again["model"] == check["model"]


def test_toy_faces_attributes_and_diversity_and_a_folder_has_none(tmp_path, tiny_overrides):
    from link_core.synth import draw_toyface
    from linkgan import part_quality
    from linkgan.model import Model

    record = {}
    image, _ = draw_toyface(0, 3, 16, record)
    assert set(record) == {"background", "left_pupil", "mouth"}
    assert (draw_toyface(0, 3, 16)[0] == image).all()  # recording draws nothing
    run = tmp_path / "run"
    api.train(run, None, [*tiny_overrides, "train.kimg=0.004"], progress=False)
    model = Model.load(run)
    check = part_quality.attribute_check(
        model.G, model.config, 8, progress=False, cache=tmp_path / "c", classifier=(64, 32)
    )
    assert set(check["ratio"]) == {"background", "left_pupil", "mouth"}
    assert check["classifier"]["data"].startswith("synthetic toyfaces")
    div = part_quality.part_diversity(model.G, model.links, model.config, num=4)
    assert set(div["data"]["left_eye"]) == {"image"} and div["data"]["left_eye"]["image"] > 0
    model.config.data.path = str(tmp_path / "photos.zip")
    with pytest.raises(UserError, match="attributes: need the built-in"):
        part_quality.attribute_check(model.G, model.config, 8, progress=False)


def test_fid_repeats_give_mean_and_std_over_disjoint_fakes(tmp_path, tiny_overrides, monkeypatch):
    from link_core.metrics import fid as fid_module

    monkeypatch.setenv("LINKGAN_CACHE", str(tmp_path / "cache"))
    net = lambda x: torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)  # noqa: E731
    monkeypatch.setattr(fid_module, "load_inception", lambda device="cpu": net)
    run = tmp_path / "run"
    api.train(run, None, [*tiny_overrides, "data.num_images=8", "train.kimg=0.004"], progress=False)
    out = tmp_path / "m.json"
    args = ["metrics", "--ckpt", str(run), "--metrics", "fid,kid", "--num", "6", "--no-progress"]
    assert main([*args, "--repeats", "3", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert len(result["fid_runs"]) == 3 and len(set(result["fid_runs"])) == 3
    assert result["fid"] == result["fid_runs"][0]
    assert result["fid_mean"] == pytest.approx(sum(result["fid_runs"]) / 3)
    assert result["fid_std"] > 0 and result["kid_std"] >= 0
    assert result["repeats"]["last"].startswith("seeds 12..17")
    assert main([*args, "--repeats", "0"]) == 2
