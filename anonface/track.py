"""A face tracker that keeps faces covered in frames where the detector blinks.

Detections arrive frame by frame (``None`` for frames the detector skipped, e.g. with
detect-every-k). Each detection is matched to a track (greedy, by IoU with the track's box
extrapolated at its recent velocity). A frame's boxes are final once ``lookahead`` later frames
have arrived; for each track, frame ``t`` gets

* the track's (smoothed) box if it was detected at ``t``;
* a box linearly interpolated between its detections at ``t1 < t < t2`` when ``t2 - t1 <=
  max_gap``: a face detected at frames t and t+k stays covered in between;
* its last box for ``linger`` frames after its last detection, and its first box for ``linger``
  frames before its first one (the look-ahead lets us cover a face before the detector sees it,
  which hides more: privacy fails closed); a moving face also gets a box extrapolated at its
  velocity there;
* where the path is uncertain (a face moved more than about half its size between sightings,
  or an extrapolation), the held boxes are kept next to the moving one, so a wrong association
  or velocity still leaves the face covered. A frame can thus have more boxes than faces.

Smoothing averages a box's centre with detections at the same distance before and after it
(symmetric, so a face moving at constant speed is not lagged) and never shrinks a box; in a frame
where a face was detected, the smoothed box is widened to contain that detection, so smoothing
never uncovers part of a face the detector (or the caller) reported.

Boxes are ``[K, 5]`` float32 ``(x1, y1, x2, y2, score)``, pixel-corner coordinates. Detections
with five landmarks (``[K, 15]``: the score followed by their ``(x, y)``, from
``CenterFace(landmarks=True)``) give ``[K, 15]`` boxes: each track holds its landmarks relative to
its box, averages them over the smoothing window with the box, interpolates them between sightings
and carries them with held and extrapolated boxes; unknown landmarks are NaN. They place the face a
model method draws; what is covered is decided by the boxes alone.
"""

from __future__ import annotations

import bisect
import logging
import math
from dataclasses import dataclass, field

import numpy as np

from anonface.detect.boxes import with_landmarks
from anonface.detect.decode import box_iou

__all__ = ["FaceTracker", "Track"]

log = logging.getLogger(__name__)


def _relative(dets: np.ndarray) -> np.ndarray:
    """``[K, 15]`` rows with their landmarks relative to their box (0 at ``x1``/``y1``, 1 at
    ``x2``/``y2``); NaN where the box has no width or height."""
    out = dets.copy()
    w, h = dets[:, 2] - dets[:, 0], dets[:, 3] - dets[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        out[:, 5::2] = np.where(w[:, None] > 0, (dets[:, 5::2] - dets[:, 0:1]) / w[:, None], np.nan)
        out[:, 6::2] = np.where(h[:, None] > 0, (dets[:, 6::2] - dets[:, 1:2]) / h[:, None], np.nan)
    return out


def _absolute(rows: np.ndarray) -> np.ndarray:
    """The inverse of :func:`_relative` for each row's own (final) box."""
    out = rows.copy()
    w, h = rows[:, 2] - rows[:, 0], rows[:, 3] - rows[:, 1]
    out[:, 5::2] = rows[:, 0:1] + rows[:, 5::2] * w[:, None]
    out[:, 6::2] = rows[:, 1:2] + rows[:, 6::2] * h[:, None]
    return out


def _mix(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
    """``(1 - w) * a + w * b`` of two rows, landmarks known on one side only taken from that side."""
    out = ((1 - w) * a + w * b).astype(np.float32)
    out[5:] = np.where(np.isnan(a[5:]), b[5:], np.where(np.isnan(b[5:]), a[5:], out[5:]))
    return out


@dataclass
class Track:
    """One face over time: the frames it was detected in and its boxes there."""

    track_id: int
    times: list[int] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)  # each [15]: box, score, relative landmarks
    # smoothed box per observation index, valid until the track gains an observation
    smoothed: dict[int, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def add(self, t: int, box: np.ndarray) -> None:
        """Record a detection at frame ``t`` (after the last one)."""
        self.times.append(t)
        self.boxes.append(box)
        self.smoothed.clear()

    def predict(self, t: int) -> np.ndarray:
        """The box at frame ``t`` extrapolated from the last two detections (constant velocity)."""
        last = self.boxes[-1][:4]
        if len(self.times) < 2:
            return last
        dt = self.times[-1] - self.times[-2]
        vel = (last - self.boxes[-2][:4]) / max(dt, 1)
        return last + vel * (t - self.times[-1])


class FaceTracker:
    """Streaming tracker with look-ahead (see the module docstring).

    Args:
        max_gap: longest run of frames between two detections of one face that is filled by
            interpolation (must be at least the detect-every-k step).
        linger: frames a track stays covered after its last detection and before its first.
        iou_threshold: a detection matches a track when their IoU (with the track's box
            extrapolated to this frame) reaches this...
        distance_gate: ...or when its centre is within this many box sizes of the track's
            (widened by the frames since a track seen only once was last seen), with a size
            ratio within 0.5-2. Pairs are taken nearest first.
        smooth_radius: frames on each side used to smooth box centres (0 = no smoothing).

    Use: ``update(dets_or_None)`` once per frame returns the frames that became final, as
    ``(frame_index, boxes [K, 5])`` in order; ``flush()`` returns the rest (call it at the end of
    a stream or batch; tracks stay alive for the frames that follow).
    """

    def __init__(
        self,
        *,
        max_gap: int = 8,
        linger: int = 5,
        iou_threshold: float = 0.2,
        distance_gate: float = 0.6,
        smooth_radius: int = 1,
    ) -> None:
        if max_gap < 1:
            raise ValueError(f"max_gap must be >= 1, got {max_gap}")
        if linger < 0:
            raise ValueError(f"linger must be >= 0, got {linger}")
        if smooth_radius < 0:
            raise ValueError(f"smooth_radius must be >= 0, got {smooth_radius}")
        self.max_gap = int(max_gap)
        self.linger = int(linger)
        self.iou_threshold = float(iou_threshold)
        self.distance_gate = float(distance_gate)
        self.smooth_radius = int(smooth_radius)
        self.lookahead = max(self.max_gap, self.linger, self.smooth_radius)
        self._tracks: list[Track] = []
        self._next_id = 0
        self._next_index = 0
        self._emit_from = 0
        self._landmarks = False  # whether boxes go out with landmarks (once detections had them)

    @property
    def frames_pending(self) -> int:
        """Frames pushed but not yet returned."""
        return self._next_index - self._emit_from

    def reset(self) -> None:
        """Forget all tracks and start a new stream at frame 0."""
        self._tracks.clear()
        self._next_index = 0
        self._emit_from = 0
        self._landmarks = False

    # -- association -------------------------------------------------------------------------
    def _associate(self, t: int, dets: np.ndarray) -> None:
        live = [tr for tr in self._tracks if t - tr.times[-1] <= self.max_gap and tr.times[-1] < t]
        matched_det = np.zeros(len(dets), dtype=bool)
        if live and len(dets):
            pred = np.stack([tr.predict(t) for tr in live])
            iou = box_iou(pred, dets)
            # Centre distance in units of the track's box size. A track seen once has no velocity
            # yet, so its gate widens with the frames since it was seen (fast faces with
            # detect-every-k move more than a box width between detections).
            pc = (pred[:, 0:2] + pred[:, 2:4]) / 2
            dc = (dets[:, 0:2] + dets[:, 2:4]) / 2
            psz = np.sqrt(np.clip((pred[:, 2] - pred[:, 0]) * (pred[:, 3] - pred[:, 1]), 1.0, None))
            dsz = np.sqrt(np.clip((dets[:, 2] - dets[:, 0]) * (dets[:, 3] - dets[:, 1]), 1.0, None))
            dist = np.linalg.norm(pc[:, None] - dc[None], axis=2) / psz[:, None]
            ratio = dsz[None] / psz[:, None]
            gap = np.array([t - tr.times[-1] for tr in live], np.float32)
            has_vel = np.array([len(tr.times) > 1 for tr in live])
            gate = np.where(
                has_vel,
                self.distance_gate * np.sqrt(gap),  # the prediction's error grows with the gap
                np.minimum(self.distance_gate * gap, 3.0),
            )
            ok = (iou >= self.iou_threshold) | (
                (dist <= gate[:, None]) & (ratio > 0.5) & (ratio < 2.0)
            )
            # Greedy, nearest pair first.
            cost = np.where(ok, dist - iou, np.inf)
            order = np.argsort(cost, axis=None, kind="stable")
            used_tr = np.zeros(len(live), dtype=bool)
            for flat in order:
                i, j = divmod(int(flat), len(dets))
                if not np.isfinite(cost[i, j]):
                    break
                if used_tr[i] or matched_det[j]:
                    continue
                used_tr[i] = matched_det[j] = True
                live[i].add(t, dets[j].astype(np.float32))
        for j in np.nonzero(~matched_det)[0]:
            self._tracks.append(Track(self._next_id, [t], [dets[j].astype(np.float32)]))
            self._next_id += 1

    # -- box at a frame ----------------------------------------------------------------------
    def _smoothed(self, tr: Track, i: int) -> np.ndarray:
        box = tr.boxes[i]
        if self.smooth_radius == 0 or len(tr.times) == 1:
            return box
        cached = tr.smoothed.get(i)
        if cached is None:
            cached = tr.smoothed[i] = self._smooth(tr, i)
        return cached

    def _smooth(self, tr: Track, i: int) -> np.ndarray:
        box = tr.boxes[i]
        t = tr.times[i]
        pos = {tt: k for k, tt in enumerate(tr.times[max(0, i - self.smooth_radius) : i + self.smooth_radius + 1], start=max(0, i - self.smooth_radius))}
        centres = [(box[0:2] + box[2:4]) / 2]
        sizes = [box[2:4] - box[0:2]]
        marks = [box[5:]]
        for d in range(1, self.smooth_radius + 1):
            a, b = pos.get(t - d), pos.get(t + d)
            if a is None or b is None:
                continue
            for k in (a, b):
                bb = tr.boxes[k]
                centres.append((bb[0:2] + bb[2:4]) / 2)
                sizes.append(bb[2:4] - bb[0:2])
                marks.append(bb[5:])
        if len(centres) == 1:
            return box
        c = np.mean(centres, axis=0)
        s = np.maximum(np.mean(sizes, axis=0), box[2:4] - box[0:2])
        m = np.stack(marks)
        known = ~np.isnan(m)
        # the landmarks of the window's sightings that have them (NaN where none has)
        lm = np.where(known.any(0), np.where(known, m, 0).sum(0) / np.maximum(known.sum(0), 1), np.nan)
        head = [c[0] - s[0] / 2, c[1] - s[1] / 2, c[0] + s[0] / 2, c[1] + s[1] / 2, box[4]]
        return np.concatenate([np.array(head, np.float32), lm.astype(np.float32)])

    def _velocity(self, tr: Track, i: int, j: int) -> np.ndarray:
        """Per-frame change of the (smoothed) box between observations i and j."""
        dt = tr.times[j] - tr.times[i]
        return (self._smoothed(tr, j)[:4] - self._smoothed(tr, i)[:4]) / max(dt, 1)

    @staticmethod
    def _moved(a: np.ndarray, b: np.ndarray) -> bool:
        """Whether two boxes of one track overlap so little that the path between is a guess.

        ``box_iou(a, b) < 0.5`` for one pair, in the same float64 arithmetic without the arrays
        (this runs for every held box of every frame)."""
        ax1, ay1, ax2, ay2 = (float(v) for v in a[:4])
        bx1, by1, bx2, by2 = (float(v) for v in b[:4])
        if math.isnan(ax1 + ay1 + ax2 + ay2 + bx1 + by1 + bx2 + by2):
            return True  # box_iou gives 0 for a NaN box
        iw = max(min(ax2, bx2) - max(ax1, bx1), 0.0)
        ih = max(min(ay2, by2) - max(ay1, by1), 0.0)
        inter = iw * ih
        union = max(ax2 - ax1, 0.0) * max(ay2 - ay1, 0.0) + max(bx2 - bx1, 0.0) * max(by2 - by1, 0.0) - inter
        return not (union > 0 and inter / union >= 0.5)

    def _boxes_at(self, tr: Track, t: int) -> list[np.ndarray]:
        """The track's boxes at frame ``t``: one, or several where the face's path is uncertain.

        Where a face moved more than about half its size between two sightings, or is
        extrapolated past its first/last sighting, the held box is kept alongside the moving
        one: if the association or the velocity is wrong, the face is still covered.
        """
        times = tr.times
        if t - times[-1] > self.linger or times[0] - t > self.linger:
            return []  # outside the track's span and its linger on either side
        n = len(times)
        i = bisect.bisect_left(times, t)
        if i < n and times[i] == t:
            # Smoothing may move the box; where the face was seen, its box stays covered too.
            box = self._smoothed(tr, i).copy()
            raw = tr.boxes[i]
            box[0:2] = np.minimum(box[0:2], raw[0:2])
            box[2:4] = np.maximum(box[2:4], raw[2:4])
            return [box]
        before = i - 1 if i > 0 else None
        after = i if i < n else None
        if before is not None and after is not None and times[after] - times[before] <= self.max_gap:
            a, b = self._smoothed(tr, before), self._smoothed(tr, after)
            w = (t - times[before]) / (times[after] - times[before])
            mid = _mix(a, b, w)
            mid[4] = min(a[4], b[4])
            out = [mid]
            if self._moved(a, b):
                if t - times[before] <= self.linger:
                    out.append(a)
                if times[after] - t <= self.linger:
                    out.append(b)
            return out
        out = []
        if before is not None and t - times[before] <= self.linger:
            held = self._smoothed(tr, before)
            out.append(held)
            if before > 0 and times[before] - times[before - 1] <= self.max_gap:
                moved = held.copy()
                moved[:4] += self._velocity(tr, before - 1, before) * (t - times[before])
                if self._moved(held, moved):
                    out.append(moved)
        if after is not None and times[after] - t <= self.linger:
            held = self._smoothed(tr, after)
            out.append(held)
            if after + 1 < n and times[after + 1] - times[after] <= self.max_gap:
                moved = held.copy()
                moved[:4] -= self._velocity(tr, after, after + 1) * (times[after] - t)
                if self._moved(held, moved):
                    out.append(moved)
        return out

    def _emit(self, upto: int) -> list[tuple[int, np.ndarray]]:
        out = []
        width = 15 if self._landmarks else 5
        for t in range(self._emit_from, upto):
            boxes = [b for tr in self._tracks for b in self._boxes_at(tr, t)]
            arr = np.stack(boxes).astype(np.float32) if boxes else np.zeros((0, 15), np.float32)
            out.append((t, _absolute(arr)[:, :width]))
        self._emit_from = max(self._emit_from, upto)
        horizon = self._emit_from - self.lookahead - 1
        self._tracks = [tr for tr in self._tracks if tr.times[-1] >= horizon]
        return out

    # -- public ------------------------------------------------------------------------------
    def update(self, dets: np.ndarray | None) -> list[tuple[int, np.ndarray]]:
        """Add the next frame's detections (``[K, 5]`` or ``[K, 15]`` with landmarks, or ``None``
        when it was not examined).

        Returns the frames whose boxes are now final, as ``(frame_index, boxes [K, 5])`` (``[K, 15]``
        once detections with landmarks have arrived).
        """
        t = self._next_index
        self._next_index += 1
        if dets is not None:
            arr = np.asarray(dets, dtype=np.float32)
            if arr.ndim == 2 and arr.shape[1] == 15:
                self._landmarks = True
            else:
                arr = with_landmarks(arr.reshape(-1, 5))
            self._associate(t, _relative(arr))
        return self._emit(self._next_index - self.lookahead)

    def flush(self) -> list[tuple[int, np.ndarray]]:
        """Return every pending frame with the boxes known so far."""
        return self._emit(self._next_index)

    def track_frames(self, dets: list[np.ndarray | None]) -> list[np.ndarray]:
        """Offline helper: track a whole sequence and return its boxes, one ``[K, 5]`` per frame."""
        out = []
        for d in dets:
            out.extend(b for _, b in self.update(d))
        out.extend(b for _, b in self.flush())
        return out
