"""How hard the link phase pulls on G next to the adversarial loss, at a run's first step.

Both are G's gradient norm over all its parameters: the main phase's non-saturating loss on
a batch, and the link phase's regularizer (eqs. 3–6 times ``link.interval``, as the loop
applies it; ``feed_d``'s adversarial term on the perturbed images not included). G is
trained with Adam, which divides every step by a running RMS of the gradients: a link
phase whose gradient is tens of times the adversarial one sets that RMS, and the main
steps between link phases then move G tens of times less than without it: the generator
stops following D. Issue #8's faces were lost that way (see the README).

    python bench/link_gradient_balance.py --config configs/quickstart_3d.yaml \\
        --lambdas 1:1,0.3:1,0.03:0.1 --out bench/results/link_gradient_balance.json

``--lambdas`` takes λ_in:λ_out pairs (default: the config's), measured on the same batches.

About a minute on 2 cores (3 batches).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from link_core.train.gan_losses import g_nonsaturating_loss
from link_core.train.loop import Trainer
from linkgan import api


def _grad_norm(params: list[torch.nn.Parameter], loss: torch.Tensor) -> float:
    for p in params:
        p.grad = None
    loss.backward()
    return float(
        torch.sqrt(sum(p.grad.float().square().sum() for p in params if p.grad is not None))
    )


def _measure(trainer: Trainer, batches: int) -> tuple[list[float], list[float]]:
    """Gradient norms of the main phase's G loss and of the link phase's regularizer."""
    cfg = trainer.cfg
    cfg.link.feed_d = False  # the regularizer alone
    params = list(trainer.G.parameters())
    trainer.G.requires_grad_(True)
    trainer.D.requires_grad_(False)
    torch.manual_seed(0)
    adv, link = [], []
    for _ in range(batches):
        z, c = trainer._global_inputs(trainer.global_batch)
        out = trainer.synthesis(trainer._mapping(z, c), c)
        adv.append(_grad_norm(params, g_nonsaturating_loss(trainer.disc(out, c).float())))
        n = trainer._shrunk(trainer.link.batch_shrink)
        step = trainer.link.step(
            trainer.G, trainer.synthesis, trainer.disc, trainer._mapping(z[:n], c[:n]), c[:n]
        )
        link.append(_grad_norm(params, step.loss))
    return adv, link


def _pair(text: str) -> tuple[float, float]:
    lambda_in, lambda_out = (float(v) for v in text.split(":"))
    return lambda_in, lambda_out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/quickstart_3d.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--lambdas", default="", help="λ_in:λ_out pairs, e.g. 1:1,0.03:0.1")
    parser.add_argument("--out", default="bench/results/link_gradient_balance.json")
    args = parser.parse_args()
    try:
        pairs = [_pair(p) for p in args.lambdas.split(",") if p]
    except ValueError:
        parser.error(f"--lambdas: expected pairs like 0.3:1,0.03:0.1; got {args.lambdas!r}")
    with tempfile.TemporaryDirectory() as tmp:
        trainer = api.build_trainer(
            Path(tmp) / "run", args.config, [*args.overrides, "train.kimg=1"], progress=False
        )
        if not trainer.link.on:
            parser.error("the config has no enabled links")
        cfg = trainer.cfg
        pairs = pairs or [(cfg.link.lambda_in, cfg.link.lambda_out)]
        rows = []
        for lambda_in, lambda_out in pairs:
            cfg.link.lambda_in, cfg.link.lambda_out = lambda_in, lambda_out
            adv, link = _measure(trainer, args.batches)
            rows.append(
                {
                    "lambda_in": lambda_in,
                    "lambda_out": lambda_out,
                    "grad_norm_adv": adv,
                    "grad_norm_link_x_interval": link,
                    "ratio_link_over_adv": sum(link) / max(sum(adv), 1e-12),
                }
            )
    result = {
        "config": args.config,
        "overrides": args.overrides,
        "interval": cfg.link.interval,
        "form": cfg.link.form,
        "batches": args.batches,
        "settings": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    for row in rows:
        print(
            f"lambda_in {row['lambda_in']:g}  lambda_out {row['lambda_out']:g}:  "
            f"|grad link x interval| / |grad adv| = {row['ratio_link_over_adv']:.1f}"
        )


if __name__ == "__main__":
    main()
