"""Real (tiny) training runs: budgets, checkpoints, bit-exact resume, a run's files."""

from __future__ import annotations

import json

import pytest
import torch

from link_core.errors import UserError
from link_core.train.optim import PreconditionedSGD, cooldown_scale, lazy_ratio
from link_core.weights import checkpoint as ckpt
from linkgan import api


def _weights(run_dir):
    tensors, meta = ckpt.read_file(ckpt.list_checkpoints(run_dir)[-1])
    return tensors, meta["counters"]


def test_lazy_ratio_matches_stylegan2():
    assert lazy_ratio([16]) == pytest.approx(16 / 17)
    assert lazy_ratio([8, 4]) == pytest.approx(4 / 5)  # reg phase every 4 steps
    assert lazy_ratio([]) == 1.0


def test_cooldown_scale_falls_linearly_over_the_last_share():
    assert cooldown_scale(0.9, 0.0) == 1.0  # off
    assert cooldown_scale(0.5, 0.25) == 1.0  # before the cooldown
    assert cooldown_scale(0.875, 0.25) == pytest.approx(0.5)
    assert cooldown_scale(1.0, 0.25) == 0.0
    assert cooldown_scale(0.0, 1.0) == 1.0


def test_lr_cooldown_lowers_every_rate_to_the_end(tmp_path, tiny_overrides):
    sets = ["train.kimg=0.032", "train.lr_cooldown=0.5", "train.log_every_steps=1"]
    api.train(tmp_path / "run", None, [*tiny_overrides, *sets], progress=False)
    rows = [
        json.loads(line) for line in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()
    ]
    scales = [r["Schedule/lr_scale"] for r in rows if "Schedule/lr_scale" in r]
    # 8 steps, each logged: 1 for the first half, then (1 - step/8) / 0.5
    assert scales[-4:] == pytest.approx([1, 0.75, 0.5, 0.25])
    assert set(scales[:-4]) == {1.0}
    _, meta = ckpt.read_file(ckpt.list_checkpoints(tmp_path / "run")[-1])
    lr_d = meta["opt_D"]["param_groups"][0]["lr"]  # the last step's, lazy rescale included
    assert lr_d == pytest.approx(0.25 * 0.0025 * 16 / 17, rel=1e-3)  # lr_d 0.0025, R1 every 16
    with pytest.raises(UserError, match="train.lr_cooldown"):
        api.train(tmp_path / "bad", None, [*tiny_overrides, "train.lr_cooldown=2"], progress=False)
    assert not (tmp_path / "bad").exists()


def test_run_writes_its_files_and_logs_every_term(tmp_path, tiny_overrides):
    result = api.train(
        tmp_path / "run", None, [*tiny_overrides, "train.kimg=0.032"], progress=False
    )
    assert result.images_seen == 32 and result.steps == 8
    run = tmp_path / "run"
    for name in ("config.yaml", "stats.jsonl", "model.safetensors"):
        assert (run / name).is_file(), name
    assert list((run / "samples").glob("*.png")) and list((run / "tensorboard").iterdir())
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    keys = set().union(*rows)
    for key in (
        "Loss/G/adv",
        "Loss/D/loss",
        "Loss/D/r1",
        "Loss/link/left_eye/image/in",
        "Loss/link/left_eye/image/out",
        "Loss/G/link_adv",
        "Timing/s_per_kimg",
    ):
        assert key in keys, key
    # A fresh run never overwrites an existing one.
    with pytest.raises(UserError, match="already holds a run"):
        api.train(run, None, [*tiny_overrides, "train.kimg=0.032"], progress=False)


def test_link_off_logs_no_link_terms(tmp_path, tiny_overrides):
    api.train(
        tmp_path / "r",
        None,
        [*tiny_overrides, "train.kimg=0.016", "link.enabled=false"],
        progress=False,
    )
    text = (tmp_path / "r" / "stats.jsonl").read_text()
    assert "Loss/link" not in text and "Loss/G/adv" in text


@pytest.mark.parametrize("adam", ["shared", "own"])
def test_link_phase_steps_g_s_adam_or_its_own(tmp_path, tiny_overrides, adam):
    """link.adam: shared — the link phase is one more G step (lazy rescale 2/3 at interval
    2); own — a second Adam, at lr_g·lr_gain, takes the link steps and G's keeps lr_g."""
    lr = 0.002
    run = tmp_path / adam
    gain = [] if adam == "shared" else ["link.lr_gain=3"]  # shared: G's Adam, G's lr
    sets = [f"train.lr_g={lr}", f"link.adam={adam}", *gain, "train.kimg=0.032"]
    api.train(run, None, [*tiny_overrides, *sets], progress=False)
    tensors, meta = ckpt.read_file(ckpt.list_checkpoints(run)[-1])
    steps = {
        name: int(tensors[f"opt_{name}.state.0.step"])
        for name in ("G", "G_link")
        if f"opt_{name}" in meta
    }
    lrs = {name: meta[f"opt_{name}"]["param_groups"][0]["lr"] for name in steps}
    if adam == "shared":  # 8 main steps + 4 link steps (every 2nd), one optimizer
        assert steps == {"G": 12} and lrs["G"] == pytest.approx(lr * 2 / 3)
    else:
        assert steps == {"G": 8, "G_link": 4}
        assert lrs == {"G": pytest.approx(lr), "G_link": pytest.approx(3 * lr)}
    # The link steps moved G in both (the loss is logged and finite).
    rows = (run / "stats.jsonl").read_text().splitlines()
    assert [json.loads(r)["Loss/link/total"] for r in rows if "Loss/link" in r]
    # A resume restores the link Adam with the rest (and refuses a checkpoint without it).
    if adam == "own":
        api.train(run, None, ["train.kimg=0.048"], resume=True, progress=False)
        tensors, _ = ckpt.read_file(ckpt.list_checkpoints(run)[-1])
        assert int(tensors["opt_G_link.state.0.step"]) == 6
    else:
        with pytest.raises(UserError, match="no optimizer state for G_link"):
            api.train(run, None, ["train.kimg=0.048", "link.adam=own"], resume=True, progress=False)


def test_link_adam_anneals_its_gain_and_can_leave_the_adversarial_term_to_g(
    tmp_path, tiny_overrides
):
    """link.lr_gain_end anneals the link Adam's lr over the budget; link.adv_adam: g steps
    the perturbed renders' adversarial loss with G's Adam (one more G step per link step)."""
    lr = 0.002
    sets = ["link.adam=own", "link.lr_gain=3", "link.lr_gain_end=1", "link.adv_adam=g"]
    run = tmp_path / "r"
    api.train(
        run, None, [*tiny_overrides, f"train.lr_g={lr}", *sets, "train.kimg=0.032"], progress=False
    )
    tensors, meta = ckpt.read_file(ckpt.list_checkpoints(run)[-1])
    steps = {n: int(tensors[f"opt_{n}.state.0.step"]) for n in ("G", "G_link")}
    assert steps == {"G": 8 + 4, "G_link": 4}  # link steps at 0, 2, 4, 6
    # The last link step (24 of 32 images seen): gain 3 + (1 - 3) * 0.75 = 1.5.
    assert meta["opt_G_link"]["param_groups"][0]["lr"] == pytest.approx(1.5 * lr)
    rows = [json.loads(r) for r in (run / "stats.jsonl").read_text().splitlines()]
    gains = [r["Link/lr_gain"] for r in rows if "Link/lr_gain" in r]
    assert gains and all(1.0 <= g <= 3.0 for g in gains)
    assert [r["Loss/G/link_adv"] for r in rows if "Loss/G/link_adv" in r]


def test_link_phase_stops_at_link_until(tmp_path, tiny_overrides):
    """link.until: no link steps (and no perturbed renders for D) once that share of the
    budget has passed; the main steps go on to the end."""
    run = tmp_path / "r"
    sets = ["link.adam=own", "link.until=0.5", "train.kimg=0.032"]
    api.train(run, None, [*tiny_overrides, *sets], progress=False)
    tensors, _ = ckpt.read_file(ckpt.list_checkpoints(run)[-1])
    steps = {n: int(tensors[f"opt_{n}.state.0.step"]) for n in ("G", "G_link")}
    # 8 G steps of 4 images; link steps at 0 and 2 (0 and 8 of 32 images seen), not at
    # 4 (16 of 32: half the budget) or 6
    assert steps == {"G": 8, "G_link": 2}
    rows = [json.loads(r) for r in (run / "stats.jsonl").read_text().splitlines()]
    adv = ["Loss/G/link_adv" in r for r in rows if "Loss/G/adv" in r]
    assert adv == [True, False]  # steps 0-3 logged with the perturbed renders, 4-7 without


@pytest.mark.parametrize(("clip", "share"), [(1e-9, 1.0), (1e9, 0.0)])
def test_link_precond_clip_reaches_the_link_steps(tmp_path, tiny_overrides, clip, share):
    """link.precond_clip bounds each link step's |g / √v̂|: a tiny bound clips every
    parameter's step, a huge one none (Link/step_clipped, the logged rows' mean)."""
    run = tmp_path / "r"
    sets = ["link.adam=precond", f"link.precond_clip={clip}", "train.kimg=0.016"]
    api.train(run, None, [*tiny_overrides, *sets], progress=False)
    rows = [json.loads(r) for r in (run / "stats.jsonl").read_text().splitlines()]
    clipped = [r["Link/step_clipped"] for r in rows if "Link/step_clipped" in r]
    assert clipped and all(v == pytest.approx(share) for v in clipped)


def test_link_precond_clip_moves_to_its_end_value_over_the_budget(tmp_path, tiny_overrides):
    """link.precond_clip_end: the bound goes linearly from precond_clip to it over the
    budget (logged as Link/precond_clip at each link step)."""
    run = tmp_path / "r"
    sets = ["link.adam=precond", "link.precond_clip=4", "link.precond_clip_end=2"]
    api.train(run, None, [*tiny_overrides, *sets, "train.kimg=0.032"], progress=False)
    rows = [json.loads(r) for r in (run / "stats.jsonl").read_text().splitlines()]
    # link steps at 0, 8, 16 and 24 of 32 images: bounds 4, 3.5, 3 and 2.5, logged as the
    # mean of every 4 steps' (2 link steps each)
    logged = [r["Link/precond_clip"] for r in rows if "Link/precond_clip" in r]
    assert logged == pytest.approx([3.75, 2.75])


def test_preconditioned_steps_divide_by_the_reference_adams_rms():
    """link.adam: precond — a plain step g / (√v̂ + eps) of G's Adam's second moment, clipped,
    and no step for a parameter that Adam has not stepped yet."""
    a, b = torch.nn.Parameter(torch.ones(4)), torch.nn.Parameter(torch.ones(2))
    ref = torch.optim.Adam([a, b], lr=0.1, betas=(0.0, 0.99))
    a.grad = torch.tensor([2.0, -2.0, 0.5, 1.0])
    ref.step()  # v̂ = g²: the reference RMS is |g| per element
    before = a.detach().clone()
    opt = PreconditionedSGD([a, b], ref, lr=0.01, clip=3.0)
    a.grad = torch.tensor([2.0, 4.0, 5.0, 0.0])
    b.grad = torch.ones(2)
    opt.step()
    ratio = torch.tensor([1.0, 2.0, 3.0, 0.0])  # 4/2, and 5/0.5 = 10 clipped at 3
    assert torch.allclose(a.detach(), before - 0.01 * ratio, atol=1e-6)
    assert torch.equal(b.detach(), torch.ones(2))  # no reference state: left alone
    assert float(opt.last_rms) == pytest.approx(((1 + 4 + 100 + 0) / 4) ** 0.5, rel=1e-5)
    assert float(opt.last_clipped) == pytest.approx(0.25)


def test_precond_link_phase_trains_logs_its_step_and_resumes(tmp_path, tiny_overrides):
    run = tmp_path / "r"
    sets = ["link.adam=precond", "link.lr_gain=2", "train.kimg=0.032"]
    api.train(run, None, [*tiny_overrides, *sets], progress=False)
    tensors, meta = ckpt.read_file(ckpt.list_checkpoints(run)[-1])
    assert int(tensors["opt_G.state.0.step"]) == 8  # G's Adam: the main steps only
    assert meta["opt_G_link"]["param_groups"][0]["lr"] == pytest.approx(2 * 0.0025)
    rows = [json.loads(r) for r in (run / "stats.jsonl").read_text().splitlines()]
    rms = [r["Link/step_rms"] for r in rows if "Link/step_rms" in r]
    assert rms and all(v > 0 for v in rms)
    api.train(run, None, ["train.kimg=0.048"], resume=True, progress=False)
    assert ckpt.list_checkpoints(run)[-1].name != ckpt.list_checkpoints(run)[0].name


def test_resample_link_phase_moves_partitions_to_mapped_ws(tmp_path, tiny_overrides, monkeypatch):
    """link.perturb: resample — the link phase hands the loss other instances' w from the
    mapping (x₁ then takes the link's axes from them, x₂ the rest); gaussian hands none."""
    from link_core.train.link_phase import LinkPhase

    seen: list[torch.Tensor | None] = []
    step = LinkPhase.step

    def spy(self, G, synthesis, disc, ws, c, sources=None, extra_c=None):
        seen.append(None if sources is None else sources.detach().clone())
        if sources is not None:
            assert sources.shape == ws.shape and not torch.equal(sources, ws)
        assert extra_c is None  # link.extra_views: 0
        return step(self, G, synthesis, disc, ws, c, sources, extra_c)

    monkeypatch.setattr(LinkPhase, "step", spy)
    for mode in ("gaussian", "resample"):
        seen.clear()
        sets = [f"link.perturb={mode}", "train.kimg=0.016"]
        api.train(tmp_path / mode, None, [*tiny_overrides, *sets], progress=False)
        assert seen, mode  # the link phase ran
        assert all((s is None) == (mode == "gaussian") for s in seen), mode
        rows = [json.loads(r) for r in (tmp_path / mode / "stats.jsonl").read_text().splitlines()]
        assert [r for r in rows if "Loss/link/total" in r], mode


def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path, tiny_overrides):
    straight = tmp_path / "straight"
    api.train(straight, None, [*tiny_overrides, "train.kimg=0.064"], progress=False)
    split = tmp_path / "split"
    api.train(split, None, [*tiny_overrides, "train.kimg=0.032"], progress=False)
    _, counters = _weights(split)
    assert counters["images_seen"] == 32
    api.train(split, None, ["train.kimg=0.064"], resume=True, progress=False)
    a, ca = _weights(straight)
    b, cb = _weights(split)
    assert ca["step"] == cb["step"] == 16 and ca["images_seen"] == cb["images_seen"] == 64
    assert set(a) == set(b)
    for key in a:  # networks, EMA, Adam moments
        assert torch.equal(a[key], b[key]), key


def test_resume_refuses_a_changed_model(tmp_path, tiny_overrides):
    run = tmp_path / "r"
    api.train(run, None, [*tiny_overrides, "train.kimg=0.016"], progress=False)
    with pytest.raises(UserError, match="model section differs"):
        api.train(run, None, ["model.w_dim=32"], resume=True, progress=False)


def test_minutes_budget_stops_training(tmp_path, tiny_overrides):
    result = api.train(
        tmp_path / "r", None, [*tiny_overrides, "train.minutes=0.03"], progress=False
    )
    assert 1.5 <= result.seconds <= 10 and result.steps > 0


def test_checkpoints_are_pruned_and_atomic(tmp_path, tiny_overrides):
    run = tmp_path / "r"
    api.train(
        run,
        None,
        [*tiny_overrides, "train.kimg=0.048", "train.ckpt_every_minutes=0.0", "train.keep_ckpts=2"],
        progress=False,
    )
    names = [p.name for p in ckpt.list_checkpoints(run)]
    assert len(names) == 2 and names[-1] == "ckpt-000000048.safetensors"
    assert not [p for p in (run / "checkpoints").iterdir() if ".tmp" in p.name]


def test_conditional_model_with_path_length_on_a_labelled_folder(tmp_path, tiny_overrides):
    """Class labels from dataset.json reach G and D; path-length reg runs and is logged."""
    from link_core.data import write_dataset_zip
    from link_core.synth import ToyFaces

    folder = tmp_path / "data"
    write_dataset_zip(ToyFaces(16, 16), str(folder))
    meta_path = folder / "dataset.json"
    meta = json.loads(meta_path.read_text())
    names = sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("img*.png")
        if p.relative_to(folder).parts[0] != "masks"
    )
    meta["labels"] = [[name, i % 3] for i, name in enumerate(names)]
    meta_path.write_text(json.dumps(meta))
    overrides = [
        *tiny_overrides,
        f"data.path={folder}",
        "model.c_dim=3",
        "loss.pl_weight=2",
        "loss.pl_interval=2",
        "train.kimg=0.016",
    ]
    api.train(tmp_path / "run", None, overrides, progress=False)
    text = (tmp_path / "run" / "stats.jsonl").read_text()
    assert "Loss/G/pl" in text
    G, cfg = api.load_generator(tmp_path / "run")
    assert G.c_dim == 3 and cfg.model.c_dim == 3
    with pytest.raises(UserError, match="c_dim is 0 but the data set's labels have 3"):
        api.train(tmp_path / "run2", None, [*overrides, "model.c_dim=0"], progress=False)


@pytest.mark.parametrize("enabled", ["true", "false"])
def test_link_mse_is_logged_during_training(tmp_path, tiny_overrides, enabled):
    run = tmp_path / "run"
    sets = [
        *tiny_overrides,
        f"link.enabled={enabled}",
        "train.kimg=0.024",
        "metrics.every_kimg=0.008",
        "metrics.train_num=4",
    ]
    api.train(run, None, sets, progress=False)
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    measured = [r for r in rows if "Link/left_eye/image/edit_in" in r]
    assert [r["kimg"] for r in measured] == [0.004, 0.008, 0.016, 0.024]  # first step, every 8
    assert all(r["Link/left_eye/image/out_over_in"] >= 0 for r in measured)


def test_a_deferred_finite_check_names_the_term_at_the_tick(tmp_path, tiny_overrides):
    """On a GPU the loss is checked once per tick (no host sync per phase): a NaN since the
    last tick stops the run naming the term whose running sum went non-finite."""
    from link_core.errors import TrainingDiverged
    from link_core.train.stats import StatsLog
    from linkgan.build import build_trainer

    trainer = build_trainer(tmp_path / "r", None, [*tiny_overrides, "train.kimg=1"], False, False)
    stats = StatsLog(tmp_path, tensorboard=False)
    stats.add("Loss/G/adv", torch.tensor(0.5))
    trainer.pending_finite = torch.tensor(True)
    trainer.raise_if_diverged(stats)  # all finite: nothing happens, the flag is consumed
    assert trainer.pending_finite is None
    stats.add("Loss/D/loss", torch.tensor(float("nan")))
    trainer.pending_finite = torch.tensor(True) & torch.tensor(False)
    with pytest.raises(TrainingDiverged, match=r"^Loss/D/loss is nan at step 0"):
        trainer.raise_if_diverged(stats)


def test_prefetching_the_reals_trains_the_same_network(tmp_path, tiny_overrides):
    """``train.prefetch`` decodes the next batch in a thread: the same batches, the same
    weights, bit for bit."""
    weights = []
    for prefetch in (True, False):
        run = tmp_path / f"p{prefetch}"
        api.train(run, None, [*tiny_overrides, "train.kimg=0.016", f"train.prefetch={prefetch}"],
                  progress=False)  # fmt: skip
        tensors, _ = ckpt.read_file(ckpt.list_checkpoints(run)[-1], prefixes=("G", "D"))
        weights.append(tensors)
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
