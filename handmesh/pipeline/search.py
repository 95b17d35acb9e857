"""Still-image hand search: every clear hand in a photo, each kept once, with its side and how sure it is.

MediaPipe's palm detector sees the whole image shrunk to 192x192 px, so it misses hands that fill the frame
(no context around the palm) and hands that shrink to a few pixels. `StillImageDetector` runs its
still-image graphs (palm detector and lite or full landmark model) over several *views* of one image
and merges what they find:

1. views of the whole image, tried in order until they explain it (as many hands as asked for, or a
   second look that finds the same hands and nothing new): the image inside a border of its own edge
   pixels (a hand that fills the frame gets context), the whole image, and the mirrored image (its
   sides mirrored back), each through MediaPipe's lite or full landmark model (with its palm detector).
   The models and the mirrored picture miss different hands (MediaPipe is not mirror-symmetric): `fast`
   runs the lite model (palm scores from 0.2) on a 30 % border and then on the mirrored image (the
   cheapest pair that found what the full model's views found on bench detect's photos);
   `thorough` runs every view through both models, with more borders;
2. coarse-to-fine windows, each of which the palm detector sees enlarged: `fast`, only when no hand was
   found yet, two overlapping strips of 60 % of the longer side through the lite model (stopping at the
   first find: a hand that fills a close-up); `thorough`, 3x3 windows of 85 %, 70 % and 50 % of each
   side through the full model, then 7x7 windows of 20 % through the lite model (hands under 40 px in
   a scene), while fewer hands than asked for were found; a level whose windows would be under 96 px is
   skipped (a small picture); a large image (a side of 1000 px or more) always gets them. A hand that
   only the fine grid saw must be seen again in a second look, a view centred on it, 5 hand sizes wide,
   enlarged to 256 px (lite, then full model): enlarged small windows of a busy scene show the palm
   detector textures (faces, necks, signs) that one window takes for a hand and a view centred on
   them does not;
3. with `pose=True` (part of `thorough`) MediaPipe Holistic: the body's pose, hands re-cropped from its
   wrists, and each hand's side from the body (the person's left or right wrist) -- a side vote that
   does not depend on how the hand looks. Holistic follows one person.

Hands found in several views are merged by box overlap or keypoint distance; the kept detection is the one
seen with most room around it (least likely cut by a window edge). Each hand's side is the
confidence-weighted vote of every view that saw it, plus the body's vote where a body was seen;
`HandDetection.side_confidence` is the probability of the chosen side (0.5 = a coin toss), and
`HandDetection.body_side` the body's side (None: no body seen), so a disagreement stays visible.

Usage (the `handmesh.pipeline.detector.Detector` interface; `detect` always searches the still image):

    from handmesh.pipeline.search import StillImageDetector
    detector = StillImageDetector(max_hands=4, search="fast")   # or "thorough"
    hands = detector.detect(rgb_uint8_image)                     # list[HandDetection], FreiHAND order
    detector.close()

`build_detector("mediapipe", max_hands, search="fast")` (handmesh.pipeline.predictor) gives one whose
video frames go to the usual tracking detector; `handmesh predict`, `handmesh label` and `evaluate`'s
landmark fit take `--search`. Measured by `handmesh bench detect` (bench/results/detect_cpu.json).
"""

from __future__ import annotations

import dataclasses
import math
import threading

import numpy as np

from handmesh.errors import HandmeshError
from handmesh.pipeline.detector import (
    HandDetection,
    MediaPipeDetector,
    flip_handedness,
    quiet_native_stderr,
)
from handmesh.pipeline.tracking import box_iou

SEARCHES = ("fast", "thorough")
# What predict, label and evaluate use unless told: the setting within the time target (bench detect).
DEFAULT_SEARCH = "fast"
# A side vote is never taken as certain: MediaPipe's 0.99 is wrong often enough (bench handedness).
MAX_VOTE_P = 0.95
# The body's side: the wrist a hand belongs to. Weighted like a fairly sure detector vote.
BODY_VOTE_P = 0.9
LITE, FULL = 0, 1  # MediaPipe's landmark models (its model_complexity)
# The four fingers' joints (FreiHAND order: wrist, thumb 1-4, then index to little finger): a hand read with
# its wrist misplaced keeps them in place.
FINGERS = slice(5, 21)
KNUCKLES = [5, 9, 13, 17]  # the four fingers' bases


@dataclasses.dataclass
class SearchConfig:
    """How hard a still image is searched (`search` picks a preset; fields refine it)."""

    search: str = "fast"
    # views of the whole image, tried in this order until they explain the image (all of them when
    # `every_view`): (view, landmark model), view "whole", "padF" (a border of F x the longer side) or
    # "flip" (the mirrored image), model LITE or FULL (MediaPipe's model_complexity 0 or 1). They explain
    # the image once as many hands as asked for were found, or (`confirm`) once a view after the first
    # finds hands but none that the views before it had not found.
    views: tuple[tuple[str, int], ...] = (("pad0.3", LITE), ("flip", LITE))
    confirm: bool = True
    every_view: bool = False  # thorough: every view runs (each is one more side vote)
    # palm scores this low still lead to hands here: the landmark model re-checks each candidate
    min_detection_confidence: float = 0.2
    # coarse-to-fine windows, tried in turn while fewer than `window_until` hands were found (0: as many as
    # asked for) or the image is large: (fraction, positions, layout, landmark model), layout "grid"
    # (positions x positions windows of `fraction` x each side) or "strips" (`positions` windows of
    # `fraction` x the longer side, the whole shorter side)
    windows: tuple[tuple[float, int, str, int], ...] = ((0.6, 2, "strips", LITE),)
    window_until: int = 1
    # a level whose windows would have a longer side under this many px is skipped: the palm detector
    # sees a view at 192 px, so smaller windows only blow pixels up (a small picture is one close-up)
    min_window_side: int = 96
    # hands seen only in windows of this fraction of the image or smaller (0: none) are kept only if a second
    # look confirms them: a view centred on the hand, `look_sizes` hand sizes wide, enlarged to `look_px`,
    # finds it again (lite, then full model; keypoints within `merge_keypoints` of the hand's size)
    second_look: float = 0.0
    look_sizes: float = 5.0
    look_px: int = 256
    large_side: int = 1000  # images with a longer side from this are searched by windows regardless
    pose: bool = False  # Holistic's body-guided hands and the body's side vote
    merge_iou: float = 0.3  # boxes overlapping at least this much are one hand (unless ...
    other_wrist: float = 0.5  # ... their wrists lie this far apart, in hand sizes: two touching hands) ...
    merge_keypoints: float = 0.25  # ... or keypoints closer than this fraction of the box side on average
    fragment_inside: float = 0.6  # ... or a box at least this much inside another ...
    fragment_area: float = 0.35  # ... and smaller than this fraction of its area (part of a hand)

    def __post_init__(self):
        for name, model in self.views:
            view_of(np.zeros((2, 2, 3), np.uint8), name)  # a clear error for a misspelt view
            _check_model(f"search view {name!r}", model)
        for fraction, positions, layout, model in self.windows:
            _check_model(f"search windows {fraction:g} x {positions} {layout}", model)

    @classmethod
    def preset(cls, search: str) -> SearchConfig:
        """The settings of a named search: "fast" or "thorough"."""
        if search not in SEARCHES:
            raise HandmeshError(f"unknown search {search!r}: choose one of {', '.join(SEARCHES)}")
        if search == "thorough":
            views = tuple(
                (v, m) for m in (LITE, FULL) for v in ("whole", "pad0.15", "pad0.3", "pad0.6", "flip")
            )
            return cls(
                search=search,
                views=views,
                every_view=True,
                # then a fine grid for hands under 40 px in scenes: windows of a fifth of each side (128 px
                # of a 640 px photo: 4-8 sizes of such a hand) through the lite model
                windows=(
                    (0.85, 3, "grid", FULL),
                    (0.7, 3, "grid", FULL),
                    (0.5, 3, "grid", FULL),
                    (0.2, 7, "grid", LITE),
                ),
                window_until=0,
                second_look=0.2,
                pose=True,
            )
        return cls(search=search)


def _check_model(what: str, model: int) -> None:
    if model not in (LITE, FULL):
        raise HandmeshError(f"{what}: model {model!r} is neither {LITE} (lite) nor {FULL} (full)")


@dataclasses.dataclass
class View:
    """A region of the image as the detector sees it: view pixel p maps to image pixel p / scale + origin."""

    image: np.ndarray
    origin: np.ndarray  # (2,) image coordinates of the view's top-left pixel
    scale: float
    name: str
    flip_width: int = 0  # > 0: the view is the image mirrored, this wide

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """View pixels (N, 2) -> image pixels."""
        p = np.asarray(points, dtype=np.float64) / self.scale + self.origin
        if self.flip_width:
            p = p.copy()
            p[..., 0] = self.flip_width - p[..., 0]
        return p


def padded_view(image: np.ndarray, pad: float) -> View:
    """The whole image inside a border of its own edge colours (`pad` x the longer side on each side)."""
    import cv2

    h, w = image.shape[:2]
    b = int(round(pad * max(h, w)))
    out = cv2.copyMakeBorder(image, b, b, b, b, cv2.BORDER_REPLICATE)
    return View(out, np.array([-b, -b], dtype=np.float64), 1.0, f"pad{pad:g}")


def window_views(image: np.ndarray, fraction: float, positions: int, layout: str = "grid") -> list[View]:
    """Overlapping windows spread evenly: "grid", `positions` x `positions` windows of `fraction` x each
    side; "strips", `positions` windows of `fraction` x the longer side that span the shorter side."""
    if layout not in ("grid", "strips"):
        raise HandmeshError(f"unknown window layout {layout!r}: use grid or strips")
    h, w = image.shape[:2]
    fx = fy = fraction
    nx = ny = positions
    if layout == "strips":
        fx, nx = (fraction, positions) if w >= h else (1.0, 1)
        fy, ny = (1.0, 1) if w >= h else (fraction, positions)
    side_w, side_h = max(1, int(round(w * fx))), max(1, int(round(h * fy)))
    xs = np.linspace(0, w - side_w, nx).round().astype(int)
    ys = np.linspace(0, h - side_h, ny).round().astype(int)
    views = []
    for y in ys:
        for x in xs:
            crop = np.ascontiguousarray(image[y : y + side_h, x : x + side_w])
            views.append(View(crop, np.array([x, y], dtype=np.float64), 1.0, f"win{fraction:g}_{x}_{y}"))
    return views


def centred_view(image: np.ndarray, centre: np.ndarray, side: float, px: int) -> View:
    """A square of `side` image pixels centred on `centre` (edge pixels repeated past the border), `px` wide."""
    import cv2

    side_i = max(int(round(side)), 2)
    x0, y0 = (np.asarray(centre, dtype=np.float64) - side_i / 2.0).round().astype(int)
    h, w = image.shape[:2]
    pad = max(0, -x0, -y0, x0 + side_i - w, y0 + side_i - h)
    src = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE) if pad else image
    crop = src[y0 + pad : y0 + pad + side_i, x0 + pad : x0 + pad + side_i]
    scale = px / side_i
    out = cv2.resize(crop, (px, px), interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)
    return View(np.ascontiguousarray(out), np.array([x0, y0], dtype=np.float64), scale, "look")


def flipped_view(image: np.ndarray) -> View:
    """The image mirrored left to right (`View.flipped`: x and the side are mirrored back)."""
    return View(np.ascontiguousarray(image[:, ::-1]), np.zeros(2), 1.0, "flip", flip_width=image.shape[1])


def view_of(image: np.ndarray, name: str) -> View:
    """A named view of the whole image: "whole", "padF" (`padded_view` with F) or "flip"."""
    if name == "whole":
        return View(image, np.zeros(2), 1.0, "whole")
    if name == "flip":
        return flipped_view(image)
    if name.startswith("pad"):
        try:
            pad = float(name[3:])
        except ValueError:
            pad = -1.0
        if 0.0 <= pad <= 2.0:
            return padded_view(image, pad)
    raise HandmeshError(f"unknown search view {name!r}: use whole, flip or padF (F a border fraction, 0-2)")


def side_p_right(det: HandDetection) -> float:
    """The detector's vote as a probability that the hand is a right hand (clipped away from certainty)."""
    p = min(max(float(det.side_confidence), 0.5), MAX_VOTE_P)
    return p if det.handedness == "right" else 1.0 - p


def combine_votes(p_rights: list[float], weights: list[float] | None = None) -> float:
    """Independent side votes -> P(right): weighted sum of log-odds."""
    weights = weights or [1.0] * len(p_rights)
    logit = sum(w * math.log(p / (1.0 - p)) for p, w in zip(p_rights, weights, strict=True))
    return 1.0 / (1.0 + math.exp(-logit))


def _room(box: np.ndarray, shape: tuple[int, ...]) -> float:
    """How far a box (view pixels) stays from the view's edges, in box sides (small: maybe cut off)."""
    h, w = shape[:2]
    x0, y0, x1, y1 = np.asarray(box, dtype=np.float64)
    side = max(x1 - x0, y1 - y0, 1.0)
    return min(x0, y0, w - x1, h - y1) / side


def _area(box: np.ndarray) -> float:
    return max(float(box[2] - box[0]), 0.0) * max(float(box[3] - box[1]), 0.0)


def same_hand(a: HandDetection, b: HandDetection, cfg: SearchConfig) -> bool:
    """Whether two detections (image coordinates) are one hand: boxes overlap from about the same wrist
    (two hands that touch overlap too, but come from two wrists), keypoints coincide, one is a fragment
    (a much smaller box lying mostly inside the other: part of a hand cut by a window), or one reading
    repeats the other's fingers from another wrist (`_read_twice`)."""
    ba, bb = np.asarray(a.box, dtype=np.float64), np.asarray(b.box, dtype=np.float64)
    if box_iou(ba, bb) >= cfg.merge_iou:
        if a.keypoints2d is None or b.keypoints2d is None:
            return True
        side = max(np.ptp(a.keypoints2d, axis=0).max(), np.ptp(b.keypoints2d, axis=0).max(), 1.0)
        if float(np.linalg.norm(a.keypoints2d[0] - b.keypoints2d[0])) < cfg.other_wrist * side:
            return True
        return _read_twice(a, b, cfg, side)  # two wrists: two hands that touch, unless one was read twice
    small, large = sorted((_area(ba), _area(bb)))
    iw = max(0.0, min(ba[2], bb[2]) - max(ba[0], bb[0]))
    ih = max(0.0, min(ba[3], bb[3]) - max(ba[1], bb[1]))
    if small > 0 and iw * ih >= cfg.fragment_inside * small and small < cfg.fragment_area * large:
        return True
    if a.keypoints2d is None or b.keypoints2d is None:
        return False
    side = max(np.ptp(a.keypoints2d, axis=0).max(), np.ptp(b.keypoints2d, axis=0).max(), 1.0)
    return _mean_distance(a, b) < cfg.merge_keypoints * side or _read_twice(a, b, cfg, side)


def _read_twice(a: HandDetection, b: HandDetection, cfg: SearchConfig, side: float) -> bool:
    """Whether two readings with different wrists are one hand read twice, its fingers also taken for a
    smaller hand whose wrist sits at the finger bases (render_6_left: boxes overlapping 0.23-0.37, all
    keypoints 0.25-0.30 hand sizes apart on average, the four fingers 0.15, one wrist 0.1 from the other's
    knuckles). The fingers coincide (within `merge_keypoints` of the hand's size), and either both readings
    give one side or one's wrist lies at the other's knuckles (as close): a hand sharing another's fingers
    from there would have no palm. A person's two hands pressed together share fingers too, but are a
    left and a right hand from two wrists that lie elsewhere."""
    near = cfg.merge_keypoints * side
    if _mean_distance(a, b, FINGERS) >= near:
        return False
    if a.handedness == b.handedness:
        return True
    kp_a, kp_b = a.keypoints2d, b.keypoints2d
    at_a = float(np.linalg.norm(kp_b[0] - kp_a[KNUCKLES].mean(axis=0)))
    at_b = float(np.linalg.norm(kp_a[0] - kp_b[KNUCKLES].mean(axis=0)))
    return min(at_a, at_b) < near


def _mean_distance(a: HandDetection, b: HandDetection, joints: slice = slice(None)) -> float:
    """Mean distance of two detections' matching keypoints (of `joints`), px."""
    return float(np.linalg.norm(a.keypoints2d[joints] - b.keypoints2d[joints], axis=1).mean())


@dataclasses.dataclass
class _Seen:
    det: HandDetection  # in image coordinates
    room: float  # how far it stays from its view's edges, in box sides
    view: str
    needs_look: bool = False  # seen in a fine window only: kept if a second look confirms it

    @property
    def rank(self) -> tuple[bool, float]:
        """Which sighting of a hand to keep: one not at a view's edge, then the largest (not a fragment)."""
        return self.room >= 0.1, _area(np.asarray(self.det.box))


def sightings_per_hand(found: list[_Seen], cfg: SearchConfig) -> list[list[_Seen]]:
    """The sightings grouped by hand, each group's best sighting first (see `_Seen.rank`)."""
    clusters: list[list[_Seen]] = []
    for s in sorted(found, key=lambda s: s.rank, reverse=True):
        for cl in clusters:
            if same_hand(cl[0].det, s.det, cfg):
                cl.append(s)
                break
        else:
            clusters.append([s])
    return clusters


def merge_views(found: list[_Seen], cfg: SearchConfig) -> list[HandDetection]:
    """One detection per hand: the sightings of one hand across views are merged, the best kept (see
    `_Seen.rank`), its side the vote of all of them weighted by their size."""
    out = []
    for cl in sightings_per_hand(found, cfg):
        best = cl[0].det
        sizes = [np.sqrt(_area(np.asarray(s.det.box))) for s in cl]
        weights = [z / max(sum(sizes), 1e-9) for z in sizes]  # a fragment's side says little
        p = combine_votes([side_p_right(s.det) for s in cl], weights)
        side = "right" if p >= 0.5 else "left"
        out.append(
            dataclasses.replace(
                best,
                handedness=side,
                side_confidence=max(p, 1.0 - p),
                score=max(s.det.score for s in cl),
            )
        )
    return out


class StillImageDetector:
    """MediaPipe over several views of one still image, duplicates merged (see the module docstring).

    Video frames (`detect(frame, static=False)`) go to `video`, a tracking detector, when one is given:
    tracking already finds hands between frames, and the search costs several still-image passes.
    """

    def __init__(
        self,
        max_hands: int = 2,
        search: str = "fast",
        config: SearchConfig | None = None,
        video=None,
    ):
        self.config = config or SearchConfig.preset(search)
        self.max_hands = int(max_hands)
        self.video = video
        # one still-image graph per landmark model (built on first use)
        self._hands = {
            model: MediaPipeDetector(
                max_hands=self.max_hands,
                model_complexity=model,
                min_detection_confidence=self.config.min_detection_confidence,
                search_every=0,
            )
            for model in (LITE, FULL)
        }
        self._holistic = None
        self._lock = threading.Lock()

    def set_max_hands(self, n: int) -> None:
        """Change the hand limit (of the video detector too)."""
        self.max_hands = int(n)
        for graph in self._hands.values():
            graph.set_max_hands(n)
        if hasattr(self.video, "set_max_hands"):
            self.video.set_max_hands(n)

    def reset(self) -> None:
        """Forget the video detector's tracks (a still image has none)."""
        if hasattr(self.video, "reset"):
            self.video.reset()

    def _run_view(self, view: View, model: int = FULL) -> list[_Seen]:
        out = []
        for d in self._hands[model].detect(view.image, static=True):
            room = _room(d.box, view.image.shape)
            kp = view.to_image(d.keypoints2d)
            box = np.concatenate([kp.min(axis=0), kp.max(axis=0)])
            side = flip_handedness(d.handedness) if view.flip_width else d.handedness
            kp3 = d.keypoints3d
            if view.flip_width and kp3 is not None:
                kp3 = kp3 * np.array([-1.0, 1.0, 1.0])  # the hand of the other side, mirrored back
            found = dataclasses.replace(d, box=box, keypoints2d=kp, keypoints3d=kp3, handedness=side)
            out.append(_Seen(found, room, view.name))
        return out

    def views_run(self, image: np.ndarray) -> tuple[list[HandDetection], list[str]]:
        """The merged hands and the names of the views that were searched (for benchmarks)."""
        cfg = self.config
        h, w = image.shape[:2]
        found: list[_Seen] = []
        names: list[str] = []

        def search(
            views, stop_at: int | None, confirm: bool = False, doubtful: bool = False
        ) -> list[HandDetection]:
            hands = merge_views(found, cfg)
            for i, (v, model) in enumerate(views):
                seen = self._run_view(v, model)
                for s in seen:
                    s.needs_look = doubtful
                found.extend(seen)
                names.append(f"{v.name}:{'full' if model == FULL else 'lite'}")
                before, hands = len(hands), merge_views(found, cfg)
                if stop_at is not None and len(hands) >= stop_at:
                    break  # the views tried explain the image: the rest would only cost time
                if confirm and i > 0 and seen and len(hands) == before:
                    break  # a second look saw the same hands and nothing new
            return hands

        whole = ((view_of(image, name), model) for name, model in cfg.views)  # built as tried
        if cfg.every_view:
            hands = search(whole, None)
        else:
            hands = search(whole, self.max_hands, cfg.confirm)
        enough = min(cfg.window_until or self.max_hands, self.max_hands)
        large = max(h, w) >= cfg.large_side
        for fraction, positions, layout, model in cfg.windows:
            if len(hands) >= enough and not large:
                break
            if max(h, w) * fraction < cfg.min_window_side:
                continue
            windows = [(v, model) for v in window_views(image, fraction, positions, layout)]
            hands = search(windows, None if large else enough, doubtful=fraction <= cfg.second_look)
        if any(s.needs_look for s in found):
            found = self._second_looks(image, found, names)
            hands = merge_views(found, cfg)
        if cfg.pose:
            hands = self._body_votes(image, hands)
            names.append("holistic")
        hands = sorted(hands, key=lambda d: -d.score)[: self.max_hands]
        return hands, names

    def _second_looks(self, image: np.ndarray, found: list[_Seen], names: list[str]) -> list[_Seen]:
        """The sightings less the hands seen only in fine windows that a view centred on them does not
        find again; a confirmed hand gains the second look's sightings."""
        cfg = self.config
        out: list[_Seen] = []
        for cl in sightings_per_hand(found, cfg):
            if not all(s.needs_look for s in cl):
                out.extend(cl)
                continue
            kp = cl[0].det.keypoints2d
            size = max(float(np.ptp(kp, axis=0).max()), 8.0)
            view = centred_view(
                image, (kp.min(axis=0) + kp.max(axis=0)) / 2.0, cfg.look_sizes * size, cfg.look_px
            )
            for model in (LITE, FULL):
                names.append(f"look:{'full' if model == FULL else 'lite'}")
                again = [
                    s
                    for s in self._run_view(view, model)
                    if _mean_distance(s.det, cl[0].det) < cfg.merge_keypoints * size
                ]
                if again:
                    out.extend(cl + again)
                    break
        return out

    def detect(self, frame: np.ndarray, static: bool = True) -> list[HandDetection]:
        """Every hand found in a still image; a video frame (`static=False`) goes to the video detector."""
        if not static and self.video is not None:
            return self.video.detect(frame, static=False)
        with self._lock:
            return self.views_run(np.ascontiguousarray(frame))[0]

    # --- the body's hands (Holistic) ---------------------------------------------------------------

    def _holistic_graph(self):
        if self._holistic is None:
            import mediapipe as mp

            with quiet_native_stderr():
                self._holistic = mp.solutions.holistic.Holistic(
                    static_image_mode=True, model_complexity=1, min_detection_confidence=0.5
                )
        return self._holistic

    def _body_votes(self, image: np.ndarray, hands: list[HandDetection]) -> list[HandDetection]:
        """Add Holistic's hands (sides from the body's wrists) and let the body vote on every hand near one."""
        from handmesh.hand_model.joints import MEDIAPIPE_TO_FREIHAND

        h, w = image.shape[:2]
        with quiet_native_stderr():
            res = self._holistic_graph().process(image)
        body: list[tuple[str, np.ndarray | None, np.ndarray]] = []  # side in the image, keypoints, wrist
        if res.pose_landmarks is None:
            return hands
        pose = np.array([[p.x * w, p.y * h] for p in res.pose_landmarks.landmark])
        # Pose landmarks name the person's own left/right; an unmirrored photo shows a person's left hand
        # as a left hand.
        wrists = {"left": pose[15], "right": pose[16]}
        for side, lms in (("left", res.left_hand_landmarks), ("right", res.right_hand_landmarks)):
            kp = None
            if lms is not None:
                kp = np.array([[p.x * w, p.y * h] for p in lms.landmark])[list(MEDIAPIPE_TO_FREIHAND)]
            body.append((side, kp, wrists[side]))
        out = list(hands)
        for side, kp, _ in body:
            if kp is None:
                continue
            cand = HandDetection(
                box=np.concatenate([kp.min(axis=0), kp.max(axis=0)]),
                handedness=side,
                score=BODY_VOTE_P,
                keypoints2d=kp,
                side_confidence=BODY_VOTE_P,
                body_side=side,
            )
            if not any(same_hand(cand, d, self.config) for d in out):
                out.append(cand)  # no 3D landmarks from Holistic: the landmark fit skips such hands
        for i, d in enumerate(out):
            if d.body_side is not None:
                continue
            side = _nearest_wrist(d, wrists)
            if side is None:
                continue
            p = combine_votes([side_p_right(d), BODY_VOTE_P if side == "right" else 1 - BODY_VOTE_P])
            out[i] = dataclasses.replace(
                d,
                handedness="right" if p >= 0.5 else "left",
                side_confidence=max(p, 1 - p),
                body_side=side,
            )
        return out

    def close(self) -> None:
        """Release the MediaPipe graphs."""
        for graph in self._hands.values():
            graph.close()
        if hasattr(self.video, "close"):
            self.video.close()
        if self._holistic is not None:
            self._holistic.close()
            self._holistic = None


def _nearest_wrist(det: HandDetection, wrists: dict[str, np.ndarray]) -> str | None:
    """The body's side whose wrist is this hand's wrist (within half a hand of it), else None."""
    if det.keypoints2d is None:
        return None
    side_len = max(float(np.ptp(det.keypoints2d, axis=0).max()), 1.0)
    dist = {s: float(np.linalg.norm(det.keypoints2d[0] - w)) for s, w in wrists.items()}
    best = min(dist, key=dist.get)
    return best if dist[best] < 0.5 * side_len else None
