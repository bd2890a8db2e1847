"""The three-player training loop: anonymizer M, identity discriminator D, action detector A.

One iteration (after optional pre-training of D and of A):

* D step(s): ``cls(D(f), y) + cls(D(M(f)), y)`` (the second term when ``loss.d_on_modified``), with an
  angular-margin head, on labelled faces.
* M step: identity term (``adversarial``: ``-cls(D(M f), y)``; ``label_free``:
  ``relu(cos(D(M f), D(f)) - margin)``; or both) + ``lambda_l1 * L1(M f, f)`` + ``lambda_low * L1`` of
  cell means + ``gan_weight`` * least-squares PatchGAN term + ``det_weight * L_det(A(frames with M(f)
  pasted))``; gradients reach M through ``face_paste``.
* A step: SGD on the detection loss of frames whose faces M modified (detached).
* PatchGAN step (when ``gan_weight > 0``): real crops against M's crops.

Randomness: the data generator of each step is re-seeded from ``(seed, rank, step)``, so a resumed run
draws exactly the batches an uninterrupted one would; checkpoints hold models, optimisers, the step
and torch's global RNG state, and load with ``weights_only=True``.

Multi-process: run under ``torchrun``; each model is wrapped in DistributedDataParallel (gloo on CPU,
nccl on GPU) and called once per backward pass (real and modified faces are concatenated) so the
gradient all-reduce stays consistent.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from anonface.data.actions import ActionSet
from anonface.data.faces import FaceBank
from anonface.models.action.detector import ActionDetector
from anonface.models.anonymizer import FaceAnonymizer, load_pretrained, pixelate, save_anonymizer
from anonface.models.identity import IdentityNet, MarginHead
from anonface.train.config import TrainConfig, config_to_dict
from anonface.train.paste import crop_faces, paste_faces

logger = logging.getLogger(__name__)

__all__ = ["Trainer", "PatchDiscriminator", "TrainData", "TRAIN_CHECKPOINT_FORMAT"]

TRAIN_CHECKPOINT_FORMAT = "anonface.train/1"


class PatchDiscriminator(nn.Module):
    """A small PatchGAN: ``[B, 3, S, S]`` -> realism scores ``[B, 1, S/8, S/8]``."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(3, w, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(w, 2 * w, 4, 2, 1), nn.InstanceNorm2d(2 * w), nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1), nn.InstanceNorm2d(4 * w), nn.LeakyReLU(0.2, True),
            nn.Conv2d(4 * w, 1, 3, 1, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


@dataclass
class TrainData:
    """Everything the loop samples from: a face bank and, optionally, action frames."""

    faces: FaceBank
    actions: ActionSet | None = None
    heldout_names: list[str] = field(default_factory=list)


def _unwrap(m: nn.Module) -> nn.Module:
    return m.module if isinstance(m, nn.parallel.DistributedDataParallel) else m


class _Frozen:
    """Context: parameters of the modules do not require grad; BN/dropout in eval mode."""

    def __init__(self, *mods: nn.Module) -> None:
        self.mods = mods

    def __enter__(self) -> None:
        self.state = [(m.training, [p.requires_grad for p in m.parameters()]) for m in self.mods]
        for m in self.mods:
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)

    def __exit__(self, *exc: Any) -> None:
        for m, (tr, rg) in zip(self.mods, self.state):
            m.train(tr)
            for p, r in zip(m.parameters(), rg):
                p.requires_grad_(r)


class Trainer:
    """Builds the models and optimisers from a :class:`TrainConfig` and runs the loop.

    Args:
        cfg: the configuration.
        data: the training data (see :func:`anonface.train.datasets.build_train_data`).
        rank, world_size: process index and count (DDP when ``world_size > 1``; the process group must
            already be initialised).
        device: where to train.
    """

    def __init__(self, cfg: TrainConfig, data: TrainData, rank: int = 0, world_size: int = 1,
                 device: str | torch.device = "cpu") -> None:
        self.cfg, self.data = cfg, data
        self.rank, self.world = rank, world_size
        self.device = torch.device(device)
        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        self.M: nn.Module = FaceAnonymizer(cfg.anonymizer).to(self.device)
        n_cls = data.faces.num_classes
        self.D: nn.Module = IdentityNet(cfg.identity).to(self.device)
        self.head: nn.Module = MarginHead(cfg.identity.embed_dim, max(n_cls, 1), cfg.identity.margin,
                                          cfg.identity.scale, cfg.identity.m).to(self.device)
        self.patch: nn.Module | None = PatchDiscriminator().to(self.device) if cfg.loss.gan_weight > 0 else None
        self.A: nn.Module | None = None
        if data.actions is not None:
            dcfg = cfg.detector
            if dcfg.num_classes < data.actions.num_classes:
                raise ValueError(f"detector.num_classes={dcfg.num_classes} < the data's {data.actions.num_classes} classes")
            self.A = ActionDetector(dcfg).to(self.device)
        o = cfg.optim
        self.opt_m = torch.optim.Adam(self.M.parameters(), lr=o.lr_m, betas=o.betas)
        self.opt_d = torch.optim.Adam(list(self.D.parameters()) + list(self.head.parameters()), lr=o.lr_d,
                                      betas=o.betas)
        self.opt_p = torch.optim.Adam(self.patch.parameters(), lr=o.lr_patch, betas=o.betas) if self.patch else None
        self.opt_a = torch.optim.SGD(self.A.parameters(), lr=o.lr_a, momentum=o.momentum_a,
                                     weight_decay=o.weight_decay_a) if self.A is not None else None
        if world_size > 1:
            ddp = nn.parallel.DistributedDataParallel
            kw: dict[str, Any] = {"device_ids": [self.device.index]} if self.device.type == "cuda" else {}
            self.M = ddp(self.M, **kw)
            self.D = ddp(self.D, **kw)
            self.head = ddp(self.head, **kw)
            if self.patch is not None:
                self.patch = ddp(self.patch, **kw)
            if self.A is not None:
                self.A = ddp(self.A, **kw)
        self.step = 0
        self.history: list[dict[str, float]] = []
        if cfg.init_from:
            self.init_from(cfg.init_from, cfg.init_models)
        if cfg.init_composite:
            self.init_composite(cfg.init_composite)
        elif cfg.anonymizer.base == "composite" and not cfg.init_from:
            raise ValueError("anonymizer.base 'composite' needs init_composite (a composite file) or an "
                             "init_from M that holds one")
        self.gen = torch.Generator()

    # ------------------------------------------------------------------ helpers
    @property
    def total_steps(self) -> int:
        return self.cfg.d_pretrain_steps + self.cfg.a_pretrain_steps + self.cfg.steps

    def _reseed(self) -> None:
        self.gen.manual_seed((self.cfg.seed * 1_000_003 + self.rank * 7_919 + self.step) % (2 ** 63))

    def _faces(self, batch: int) -> tuple[Tensor, Tensor]:
        a = self.cfg.anonymizer
        x, y = self.data.faces.sample(batch, a.crop_size, self.gen, jitter=self.cfg.data.crop_jitter)
        return x.to(self.device), y.to(self.device)

    def _frames(self) -> tuple[Tensor, list[dict[str, Tensor]], Tensor]:
        """A batch of action frames (float [B,3,H,W] in [0,1]), targets and face rois [K,5]."""
        acts = self.data.actions
        assert acts is not None
        idx = torch.randint(0, len(acts), (self.cfg.action_batch_size,), generator=self.gen).tolist()
        frames = acts.frames[idx].permute(0, 3, 1, 2).float().div(255).to(self.device)
        targets = [{"boxes": acts.person_boxes[i].to(self.device), "labels": acts.labels[i].to(self.device)}
                   for i in idx]
        rois = [torch.cat([torch.full((acts.face_boxes[i].shape[0], 1), float(j)), acts.face_boxes[i]], 1)
                for j, i in enumerate(idx)]
        return frames, targets, torch.cat(rois).to(self.device)

    def _codes(self, n: int) -> Tensor | None:
        """Random codes ``[n, latent_dim]`` for an M with a code, else None."""
        lat = self.cfg.anonymizer.latent_dim
        return torch.randn(n, lat, generator=self.gen).to(self.device) if lat > 0 else None

    def _rejitter(self, x: Tensor) -> Tensor:
        """The crops re-cropped a little off: shifted and scaled by up to ``loss.cons_jitter``."""
        j = self.cfg.loss.cons_jitter
        n = x.shape[0]
        u = (torch.rand(n, 3, generator=self.gen) * 2 - 1) * j
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0] = theta[:, 1, 1] = 1 + u[:, 0]
        theta[:, :, 2] = u[:, 1:] * 2
        grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def _clip(self, params: Any) -> None:
        if self.cfg.optim.grad_clip > 0:
            nn.utils.clip_grad_norm_(list(params), self.cfg.optim.grad_clip)

    def _id_loss(self, emb_m: Tensor, emb_f: Tensor, y: Tensor) -> Tensor:
        lc = self.cfg.loss
        out = emb_m.new_zeros(())
        if lc.identity in ("label_free", "both"):
            cos = (emb_m * emb_f).sum(1)
            out = out + F.relu(cos - lc.id_margin).mean()
        if lc.identity in ("adversarial", "both"):
            lab = y >= 0
            if lab.any():
                logits = _unwrap(self.head)(emb_m[lab], y[lab])
                out = out - F.cross_entropy(logits, y[lab])
        if lc.identity not in ("label_free", "adversarial", "both"):
            raise ValueError(f"loss.identity must be label_free, adversarial or both, got {lc.identity!r}")
        return out

    # ------------------------------------------------------------------ steps
    def d_step(self, use_modified: bool) -> dict[str, float]:
        x, y = self._faces(self.cfg.d_batch_size)
        lab = y >= 0
        x, y = x[lab], y[lab]
        if x.shape[0] == 0:
            return {}
        if use_modified and self.cfg.loss.d_on_modified:
            with torch.no_grad():
                xm = _unwrap(self.M)(x, self._codes(x.shape[0]))
            inp, tgt = torch.cat([x, xm]), torch.cat([y, y])
        else:
            inp, tgt = x, y
        self.D.train()
        emb = self.D(inp)
        logits = self.head(emb, tgt)
        loss = F.cross_entropy(logits, tgt)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self._clip(list(self.D.parameters()) + list(self.head.parameters()))
        self.opt_d.step()
        with torch.no_grad():
            acc = (_unwrap(self.head)(emb.detach()).argmax(1) == tgt).float().mean()
        return {"d_loss": float(loss.detach()), "d_acc": float(acc)}

    def m_step(self) -> dict[str, float]:
        lc = self.cfg.loss
        x, y = self._faces(self.cfg.batch_size)
        self.M.train()
        out: dict[str, float] = {}
        frozen = [_unwrap(self.D), _unwrap(self.head)]
        if self.patch is not None:
            frozen.append(_unwrap(self.patch))
        if self.A is not None:
            frozen.append(_unwrap(self.A))
        with _Frozen(*frozen):
            frames = targets = rois = None
            n = x.shape[0]
            # one call of M per backward (DDP): the faces, then (with a code) the same faces with a
            # second code and re-cropped ones with the first, then the action frames' faces
            parts = [x]
            z = self._codes(n)
            codes = [z] if z is not None else []
            div = z is not None and lc.lambda_div > 0
            cons = z is not None and lc.lambda_cons > 0
            if div:
                parts.append(x)
                codes.append(self._codes(n))
            if cons:
                parts.append(self._rejitter(x))
                codes.append(z)
            if self.A is not None and lc.det_weight > 0:
                frames, targets, rois = self._frames()
                crops = crop_faces(frames, rois, self.cfg.anonymizer.crop_size)
                parts.append(crops)
                if z is not None:
                    codes.append(self._codes(crops.shape[0]))
            mx_all = self.M(torch.cat(parts), torch.cat(codes) if codes else None)
            end = n * (1 + int(div) + int(cons))  # the face batches end here, the action crops follow
            mx, extra, mcrops = mx_all[:n], mx_all[n:end], mx_all[end:]
            d = _unwrap(self.D)
            emb = d(torch.cat([mx, x, extra]))
            emb_m, emb_f = emb[:n], emb[n: 2 * n].detach()
            emb_extra = emb[2 * n:]
            l_id = self._id_loss(emb_m, emb_f, y)
            l_l1 = (mx - x).abs().mean()
            loss = lc.id_weight * l_id + lc.lambda_l1 * l_l1
            out.update(m_id=float(l_id.detach()), m_l1=float(l_l1.detach()),
                       m_cos=float((emb_m.detach() * emb_f).sum(1).mean()))
            if lc.lambda_base > 0:
                with torch.no_grad():
                    target = _unwrap(self.M).base_image(x, z)
                l_base = (mx - target).abs().mean()
                loss = loss + lc.lambda_base * l_base
                out["m_base"] = float(l_base.detach())
            if lc.lambda_low > 0:
                l_low = (pixelate(mx, lc.low_cells) - pixelate(x, lc.low_cells)).abs().mean()
                loss = loss + lc.lambda_low * l_low
                out["m_low"] = float(l_low.detach())
            if div:
                # a distance, not the cosine: its gradient does not vanish where the two codes still draw
                # the same face (as they nearly do when the modulators start)
                apart = math.sqrt(2 - 2 * lc.div_margin)  # unit vectors at cosine div_margin
                l_div = F.relu(apart - (emb_m - emb_extra[:n]).norm(dim=1)).mean()
                loss = loss + lc.lambda_div * l_div
                out["m_div"] = float(l_div.detach())
            if cons:
                l_cons = (1 - (emb_m * emb_extra[n * int(div):]).sum(1)).mean()
                loss = loss + lc.lambda_cons * l_cons
                out["m_cons"] = float(l_cons.detach())
            if self.patch is not None:
                l_gan = ((_unwrap(self.patch)(mx) - 1) ** 2).mean()
                loss = loss + lc.gan_weight * l_gan
                out["m_gan"] = float(l_gan.detach())
            if frames is not None:
                pasted = paste_faces(frames, mcrops, rois)
                det = _unwrap(self.A)(pasted, targets, self.gen)
                assert isinstance(det, dict)
                l_det = sum(det.values())
                loss = loss + lc.det_weight * l_det
                out["m_det"] = float(l_det.detach())
        self.opt_m.zero_grad(set_to_none=True)
        loss.backward()
        self._clip(self.M.parameters())
        self.opt_m.step()
        out["m_loss"] = float(loss.detach())
        self._last_fake = mx.detach()
        self._last_real = x.detach()
        return out

    def patch_step(self) -> dict[str, float]:
        assert self.patch is not None and self.opt_p is not None
        real, fake = self._last_real, self._last_fake
        s = self.patch(torch.cat([real, fake]))
        n = real.shape[0]
        loss = 0.5 * (((s[:n] - 1) ** 2).mean() + (s[n:] ** 2).mean())
        self.opt_p.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_p.step()
        return {"p_loss": float(loss.detach())}

    def a_step(self, anonymize: bool) -> dict[str, float]:
        assert self.A is not None and self.opt_a is not None
        frames, targets, rois = self._frames()
        if anonymize:
            with torch.no_grad():
                m = _unwrap(self.M)
                was = m.training
                m.eval()
                crops = crop_faces(frames, rois, self.cfg.anonymizer.crop_size)
                frames = paste_faces(frames, m(crops, self._codes(crops.shape[0])), rois)
                m.train(was)
        self.A.train()
        losses = self.A(frames, targets, self.gen)
        assert isinstance(losses, dict)
        loss = sum(losses.values())
        self.opt_a.zero_grad(set_to_none=True)
        loss.backward()
        self._clip(self.A.parameters())
        self.opt_a.step()
        return {"a_loss": float(loss.detach()), **{f"a_{k}": float(v.detach()) for k, v in losses.items()}}

    def train_step(self) -> dict[str, float]:
        """One iteration (which phase depends on the step); returns the logged values."""
        c = self.cfg
        self._reseed()
        rec: dict[str, float] = {}
        if self.step < c.d_pretrain_steps:
            rec.update(self.d_step(use_modified=False))
        elif self.step < c.d_pretrain_steps + c.a_pretrain_steps:
            if self.A is not None:
                rec.update(self.a_step(anonymize=False))
        else:
            for _ in range(max(c.d_steps_per_m, 0)):
                rec.update(self.d_step(use_modified=True))
            rec.update(self.m_step())
            if self.patch is not None:
                rec.update(self.patch_step())
            if self.A is not None:
                rec.update(self.a_step(anonymize=True))
        self.step += 1
        rec["step"] = self.step
        return rec

    # ------------------------------------------------------------------ state
    def _models(self) -> dict[str, nn.Module]:
        out = {"M": _unwrap(self.M), "D": _unwrap(self.D), "head": _unwrap(self.head)}
        if self.patch is not None:
            out["patch"] = _unwrap(self.patch)
        if self.A is not None:
            out["A"] = _unwrap(self.A)
        return out

    def _optims(self) -> dict[str, torch.optim.Optimizer]:
        out = {"M": self.opt_m, "D": self.opt_d}
        if self.opt_p is not None:
            out["patch"] = self.opt_p
        if self.opt_a is not None:
            out["A"] = self.opt_a
        return out

    def state_dict(self) -> dict[str, Any]:
        m = _unwrap(self.M)
        assert isinstance(m, FaceAnonymizer)
        return {
            "format": TRAIN_CHECKPOINT_FORMAT,
            "config": config_to_dict(self.cfg),
            "step": self.step,
            "models": {k: v.state_dict() for k, v in self._models().items()},
            "optims": {k: v.state_dict() for k, v in self._optims().items()},
            "rng": {"torch": torch.get_rng_state()},
            "identity_names": list(self.data.faces.names),
            "heldout_names": list(self.data.heldout_names),
        }

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        if sd.get("format") != TRAIN_CHECKPOINT_FORMAT:
            raise ValueError(f"not a training checkpoint (format {sd.get('format')!r})")
        for k, v in self._models().items():
            v.load_state_dict(sd["models"][k])
        for k, o in self._optims().items():
            o.load_state_dict(sd["optims"][k])
        self.step = int(sd["step"])
        torch.set_rng_state(sd["rng"]["torch"])

    def init_from(self, path: str | Path, names: list[str]) -> None:
        """Copy the weights of ``names`` from a training checkpoint (optimisers and step are not touched),
        or M's from an exported anonymizer (``names == ["M"]``; e.g. the shipped weights, to train on
        from them with a fresh D)."""
        sd = torch.load(str(path), map_location=self.device, weights_only=True)
        models = self._models()
        if not isinstance(sd, dict) or sd.get("format") != TRAIN_CHECKPOINT_FORMAT:
            if list(names) != ["M"]:
                raise ValueError(f"init_from: {path} is not a training checkpoint (an exported anonymizer "
                                 "initialises M only: init_models: [M])")
            from anonface.models.anonymizer import anonymizer_from_payload

            exported = anonymizer_from_payload(sd, Path(path), map_location=self.device)
            mine = self.cfg.anonymizer
            # a code-less M may start a run with a code (its modulators start as the identity), and
            # an M may go on with its cells shown another way (the same weights)
            theirs = dataclasses.replace(exported.config, degrade_input=mine.degrade_input)
            adds_code = (theirs.latent_dim == 0 and mine.latent_dim > 0
                         and dataclasses.replace(theirs, latent_dim=mine.latent_dim) == mine)
            if theirs != mine and not adds_code:
                raise ValueError(f"init_from: the anonymizer in {path} ({exported.config}) is not this run's "
                                 f"({mine})")
            missing, _ = models["M"].load_state_dict(exported.state_dict(), strict=not adds_code)
            assert all(k.startswith("modulate.") for k in missing), missing
            logger.info("initialised M from the exported anonymizer %s%s", path,
                        " (its code modulators start as the identity)" if adds_code else "")
            return
        for n in names:
            if n not in models or n not in sd["models"]:
                raise ValueError(f"init_models: {n!r} is not in both this trainer and {path}")
            models[n].load_state_dict(sd["models"][n])
        logger.info("initialised %s from %s (step %d)", ", ".join(names), path, int(sd["step"]))

    def init_composite(self, path: str | Path) -> None:
        """Give M (``base='composite'``) the detail of the composite file at ``path``."""
        from anonface.models.composite import CompositeFace

        model = load_pretrained(path, map_location=self.device)
        if not isinstance(model, CompositeFace):
            raise ValueError(f"init_composite: {path} is not a composite anonymizer file")
        m = _unwrap(self.M)
        assert isinstance(m, FaceAnonymizer)
        m.load_composite(model)
        logger.info("M draws over the composite %s", path)

    def save(self, path: str | Path) -> None:
        """Write a training checkpoint atomically (rank 0 only)."""
        if self.rank != 0:
            return
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(self.state_dict(), str(tmp))
        os.replace(tmp, path)

    def resume(self, path: str | Path) -> None:
        sd = torch.load(str(path), map_location=self.device, weights_only=True)
        self.load_state_dict(sd)
        logger.info("resumed from %s at step %d", path, self.step)

    def export_anonymizer(self, path: str | Path, half: bool = True, meta: dict[str, Any] | None = None) -> None:
        m = _unwrap(self.M)
        assert isinstance(m, FaceAnonymizer)
        save_anonymizer(m, path, half=half, meta={"step": self.step, "config_name": self.cfg.name, **(meta or {})})

    # ------------------------------------------------------------------ loop
    def fit(self, out_dir: str | Path | None = None) -> dict[str, Any]:
        """Run until ``total_steps`` (or the time limit), logging and checkpointing; returns a summary."""
        c = self.cfg
        out = Path(out_dir or c.out_dir)
        ckpt = out / "last.pt"
        log_path = out / "log.jsonl"
        if self.rank == 0:
            out.mkdir(parents=True, exist_ok=True)
        t0 = last_ck = time.time()
        start = self.step
        sums: dict[str, float] = {}
        count = 0
        while self.step < self.total_steps:
            rec = self.train_step()
            for k, v in rec.items():
                if k != "step" and math.isfinite(v):
                    sums[k] = sums.get(k, 0.0) + v
            count += 1
            now = time.time()
            if self.step % max(c.log_every, 1) == 0 or self.step == self.total_steps:
                avg = {k: v / count for k, v in sums.items()}
                avg.update(step=self.step, elapsed_s=round(now - t0, 1))
                self.history.append(avg)
                logger.info("step %d/%d %s", self.step, self.total_steps,
                            " ".join(f"{k}={v:.4f}" for k, v in avg.items() if k not in ("step", "elapsed_s")))
                if self.rank == 0:
                    with open(log_path, "a") as f:
                        f.write(json.dumps(avg) + "\n")
                sums, count = {}, 0
            due = (c.ckpt_every_s > 0 and now - last_ck >= c.ckpt_every_s) or \
                (c.ckpt_every_steps > 0 and self.step % c.ckpt_every_steps == 0)
            if due:
                self.save(ckpt)
                last_ck = now
            if c.time_limit_s > 0 and now - t0 >= c.time_limit_s:
                logger.info("time limit reached at step %d", self.step)
                break
        self.save(ckpt)
        if self.rank == 0:
            self.export_anonymizer(out / "anonymizer.pt")
        summary = {"steps_run": self.step - start, "step": self.step, "total_steps": self.total_steps,
                   "seconds": round(time.time() - t0, 1), "last": self.history[-1] if self.history else {},
                   "checkpoint": str(ckpt)}
        return summary

