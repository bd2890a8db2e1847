"""RoI heads: sample proposals, ``roi_align`` 7x7 features, classify actions and refine boxes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from anonface.models.action.boxes import BoxCoder, batched_nms, box_iou, clip_boxes
from anonface.models.action.rpn import Matcher, sample_labels
from anonface.ops import roi_align

__all__ = ["RoIHeads"]


class RoIHeads(nn.Module):
    """Two FC layers over 7x7 RoI features; ``num_classes`` actions plus background (label 0)."""

    def __init__(self, channels: int, stride: int, num_classes: int, hidden: int = 256, pool: int = 7,
                 batch_per_image: int = 64, fg_frac: float = 0.25, score_thresh: float = 0.05,
                 nms_thresh: float = 0.5, detections_per_image: int = 20) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.pool, self.stride = pool, stride
        self.fc1 = nn.Linear(channels * pool * pool, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.cls = nn.Linear(hidden, num_classes + 1)
        self.reg = nn.Linear(hidden, 4 * (num_classes + 1))
        nn.init.normal_(self.cls.weight, std=0.01)
        nn.init.normal_(self.reg.weight, std=0.001)
        nn.init.zeros_(self.cls.bias)
        nn.init.zeros_(self.reg.bias)
        self.coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
        self.matcher = Matcher(0.5, 0.5, False)
        self.batch_per_image, self.fg_frac = batch_per_image, fg_frac
        self.score_thresh, self.nms_thresh, self.dets = score_thresh, nms_thresh, detections_per_image

    def _features(self, feat: Tensor, boxes: list[Tensor]) -> tuple[Tensor, Tensor]:
        rois = torch.cat([torch.cat([torch.full((b.shape[0], 1), float(i), device=b.device, dtype=b.dtype), b], 1)
                          for i, b in enumerate(boxes)]) if boxes else feat.new_zeros(0, 5)
        x = roi_align(feat, rois, (self.pool, self.pool), spatial_scale=1.0 / self.stride, sampling_ratio=2,
                      aligned=True)
        x = F.relu(self.fc2(F.relu(self.fc1(x.flatten(1)))))
        return self.cls(x), self.reg(x)

    def forward(self, feat: Tensor, proposals: list[Tensor], image_size: tuple[int, int],
                targets: list[dict[str, Tensor]] | None = None, gen: torch.Generator | None = None
                ) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        if targets is not None:
            boxes, labels, reg_t = [], [], []
            for p, t in zip(proposals, targets):
                p = torch.cat([p, t["boxes"]])  # gt boxes are proposals too
                m = self.matcher(box_iou(t["boxes"], p))
                fg, bg = sample_labels(m, self.batch_per_image, self.fg_frac, gen)
                idx = torch.cat([fg, bg])
                boxes.append(p[idx])
                lab = torch.zeros(idx.numel(), dtype=torch.long, device=p.device)
                lab[: fg.numel()] = t["labels"][m[fg]]
                labels.append(lab)
                rt = torch.zeros(idx.numel(), 4, device=p.device)
                if fg.numel():
                    rt[: fg.numel()] = self.coder.encode(p[fg], t["boxes"][m[fg]])
                reg_t.append(rt)
            logits, deltas = self._features(feat, boxes)
            lab = torch.cat(labels)
            rt = torch.cat(reg_t)
            cls_loss = F.cross_entropy(logits, lab)
            fgm = lab > 0
            d = deltas.reshape(-1, self.num_classes + 1, 4)[fgm, lab[fgm]]
            reg_loss = F.smooth_l1_loss(d, rt[fgm], beta=1.0, reduction="sum") / max(lab.numel(), 1)
            return [], {"roi_cls": cls_loss, "roi_reg": reg_loss}
        return self.postprocess(feat, proposals, image_size), {}

    @torch.no_grad()
    def postprocess(self, feat: Tensor, proposals: list[Tensor], image_size: tuple[int, int]) -> list[dict[str, Tensor]]:
        h, w = image_size
        logits, deltas = self._features(feat, proposals)
        probs = logits.softmax(-1)
        out = []
        start = 0
        c1 = self.num_classes + 1
        for p in proposals:
            n = p.shape[0]
            pr = probs[start:start + n, 1:]
            bx = clip_boxes(self.coder.decode(p, deltas[start:start + n]), h, w).reshape(n, c1, 4)[:, 1:]
            start += n
            labels = torch.arange(1, c1, device=p.device).expand(n, -1)
            bx, sc, lb = bx.reshape(-1, 4), pr.reshape(-1), labels.reshape(-1)
            keep = sc > self.score_thresh
            bx, sc, lb = bx[keep], sc[keep], lb[keep]
            keep = batched_nms(bx, sc, lb, self.nms_thresh)[: self.dets]
            out.append({"boxes": bx[keep], "scores": sc[keep], "labels": lb[keep]})
        return out
