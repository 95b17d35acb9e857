"""Hand detectors: boxes, handedness and landmarks per frame, behind one small interface.

Handedness convention: `HandDetection.handedness` is the hand *as it appears in the given image*
("right" = it looks like a right hand in these pixels). That is what the mesh geometry needs. A selfie
view (e.g. the browser webcam with mirroring on) shows a person's right hand as a left hand; the app
translates for display where it knows the image is mirrored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import threading
from typing import Protocol, runtime_checkable

import numpy as np

from handmesh.errors import HandmeshError, debug_enabled
from handmesh.hand_model.joints import MEDIAPIPE_TO_FREIHAND, mediapipe_handedness_to_image


@dataclasses.dataclass
class HandDetection:
    """One detected hand: box [x0,y0,x1,y1] px, handedness "left"|"right", landmarks in FreiHAND order.

    `side_confidence` is the probability that `handedness` is right (0.5: a coin toss, 1: given, e.g. a
    fixed box's side); `body_side` is the side of the body's wrist the hand belongs to, where a body was
    seen (None otherwise), so a hand whose two sides disagree says so.
    """

    box: np.ndarray
    handedness: str = "right"
    score: float = 1.0
    keypoints2d: np.ndarray | None = None  # (21, 2) pixels
    keypoints3d: np.ndarray | None = None  # (21, 3) metric world landmarks (metres, hand-centred)
    track_id: int = -1
    side_confidence: float = 1.0
    body_side: str | None = None

    @property
    def sides_agree(self) -> bool | None:
        """Whether the hand's side and the body's side agree (None: no body seen)."""
        return None if self.body_side is None else self.body_side == self.handedness


@runtime_checkable
class Detector(Protocol):
    """Anything that finds hands in an RGB uint8 frame."""

    def detect(self, frame: np.ndarray, static: bool = False) -> list[HandDetection]:
        """Hands in `frame`; `static=True` treats it as an unrelated single image (no tracking)."""
        ...


def flip_handedness(label: str) -> str:
    """ "left" <-> "right"."""
    return "left" if label == "right" else "right"


class StaticDetector:
    """Returns the same known boxes for every frame (tests, benchmarks, the browser test)."""

    def __init__(self, detections: list[HandDetection] | list[tuple] | None = None):
        self.detections = [
            d if isinstance(d, HandDetection) else _detection_from_tuple(d) for d in detections or []
        ]

    @classmethod
    def from_spec(cls, text: str) -> StaticDetector:
        """Boxes from "X0,Y0,X1,Y1[,left|right][;X0,...]" (the part after "static:" in a detector spec)."""
        dets = []
        for part in text.split(";"):
            fields = [f.strip() for f in part.split(",") if f.strip()]
            if len(fields) not in (4, 5):
                raise HandmeshError(f"detector spec {part!r}: expected X0,Y0,X1,Y1[,left|right]")
            try:
                box = np.array([float(f) for f in fields[:4]])
            except ValueError as exc:
                raise HandmeshError(f"detector spec {part!r}: box values must be numbers") from exc
            side = fields[4].lower() if len(fields) == 5 else "right"
            if side not in ("left", "right"):
                raise HandmeshError(f"detector spec {part!r}: handedness must be left or right")
            if not np.isfinite(box).all() or box[2] <= box[0] or box[3] <= box[1]:
                raise HandmeshError(f"detector spec {part!r}: need finite X1 > X0 and Y1 > Y0")
            dets.append(HandDetection(box=box, handedness=side))
        return cls(dets)

    def detect(self, frame: np.ndarray, static: bool = False) -> list[HandDetection]:
        """Copies of the configured detections, clipped to hands that touch the frame."""
        h, w = frame.shape[:2]
        out = []
        for d in self.detections:
            x0, y0, x1, y1 = d.box
            if x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h:
                continue
            out.append(dataclasses.replace(d, box=np.asarray(d.box, dtype=np.float64).copy()))
        return out


def _detection_from_tuple(item: tuple) -> HandDetection:
    box, *rest = item
    handedness = rest[0] if rest else "right"
    return HandDetection(box=np.asarray(box, dtype=np.float64), handedness=handedness)


@contextlib.contextmanager
def quiet_native_stderr():
    """Silence what native code writes to the process's stderr for a moment (kept with HANDMESH_DEBUG).

    MediaPipe's TFLite and absl print several lines (XNNPACK delegate, "Feedback manager requires...")
    straight to file descriptor 2 when a graph is built and first run; no setting of theirs turns them
    off, so the descriptor itself is pointed at /dev/null meanwhile.
    """
    if debug_enabled():
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real descriptor 2 (embedded interpreters): nothing to silence
        yield
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


class MediaPipeDetector:
    """MediaPipe Hands (palm detector + landmark model), offline, tracking between frames.

    With `static_image_mode=False` MediaPipe re-runs the palm detector only when it tracks fewer hands
    than its `max_num_hands`, so most video frames cost just the landmark model. With the usual limit
    of two and one hand in view, though, it would search on every frame (docs/demo.md, "Detection
    with a limit of two hands", has the cost). So the video graph is built for as many hands as are being tracked, and
    every `search_every` frames one still-image search with the full limit looks for more (about a
    third of a second to pick up a second hand at 30 FPS); a graph tracking more hands than are seen
    for `shrink_after` frames is rebuilt for fewer. `search_every=0` leaves MediaPipe's own behaviour.

    Its 21 landmarks are in the same order as FreiHAND's joints (wrist, then thumb, index, middle,
    ring, pinky from base to tip), so no reordering is needed. MediaPipe labels handedness as if the
    image were a mirrored selfie; we report the handedness as seen in the image, i.e. the opposite
    label (see the module docstring).
    """

    def __init__(
        self,
        max_hands: int = 2,
        model_complexity: int = 0,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        search_every: int = 10,
        shrink_after: int = 15,
    ):
        try:
            import mediapipe as mp
        except ImportError as exc:  # pragma: no cover - mediapipe is in the demo extra
            raise HandmeshError("mediapipe is not installed: pip install 'handmesh[demo]'") from exc
        self._hands_cls = mp.solutions.hands.Hands
        self.kwargs = dict(
            max_num_hands=int(max_hands),
            model_complexity=int(model_complexity),
            min_detection_confidence=float(min_detection_confidence),
            min_tracking_confidence=float(min_tracking_confidence),
        )
        self.search_every = max(0, int(search_every))
        self.shrink_after = max(1, int(shrink_after))
        self._video = None
        self._video_hands = 1  # max_num_hands of the video graph (adaptive, see the class docstring)
        self._frames = 0
        self._short = 0  # consecutive frames with fewer hands than the video graph tracks
        self._image = None
        self._warm: set[int] = set()  # ids of the graphs that have run once (their start-up logs are past)
        self._lock = threading.Lock()

    @property
    def max_hands(self) -> int:
        """The most hands reported per frame."""
        return self.kwargs["max_num_hands"]

    def set_max_hands(self, n: int) -> None:
        """Change the hand limit (rebuilds the MediaPipe graphs lazily)."""
        if int(n) != self.kwargs["max_num_hands"]:
            with self._lock:
                self.kwargs["max_num_hands"] = int(n)
                self._close_graphs()

    def _adaptive(self) -> bool:
        return self.search_every > 0 and self.max_hands > 1

    def _graph(self, static: bool):
        if static:
            if self._image is None:
                self._image = self._hands_cls(static_image_mode=True, **self.kwargs)
            return self._image
        if self._video is None:
            kwargs = dict(self.kwargs)
            if self._adaptive():
                kwargs["max_num_hands"] = self._video_hands
            self._video = self._hands_cls(static_image_mode=False, **kwargs)
        return self._video

    def _rebuild_video(self, hands: int) -> None:
        if self._video is not None:
            self._warm.discard(id(self._video))
            self._video.close()
            self._video = None
        self._video_hands = max(1, min(int(hands), self.max_hands))
        self._short = 0

    def _run(self, static: bool, image: np.ndarray):
        """One graph on one image; a new graph's first run (and its construction) prints nothing."""
        built = self._image if static else self._video
        if built is not None and id(built) in self._warm:
            return built.process(image)
        with quiet_native_stderr():
            graph = self._graph(static)
            result = graph.process(image)
        self._warm.add(id(graph))
        return result

    def _track(self, image: np.ndarray):
        """One video frame: the tracking graph, plus the periodic search for more hands."""
        result = self._run(False, image)
        if not self._adaptive():
            return result
        self._frames += 1
        found = len(result.multi_hand_landmarks or [])
        self._short = self._short + 1 if found < self._video_hands else 0
        if self._video_hands > 1 and self._short >= self.shrink_after:
            self._rebuild_video(found)  # fewer hands than the graph tracks: it would search every frame
        elif 0 < found and self._video_hands < self.max_hands and self._frames % self.search_every == 0:
            searched = self._run(True, image)
            more = len(searched.multi_hand_landmarks or [])
            if more > found:
                self._rebuild_video(more)  # the new graph finds them again on the next frame
                return searched
        return result

    def detect(self, frame: np.ndarray, static: bool = False) -> list[HandDetection]:
        """Hands in an RGB uint8 frame; `static=True` uses a separate graph without tracking."""
        h, w = frame.shape[:2]
        image = np.ascontiguousarray(frame)
        image.flags.writeable = False
        with self._lock:
            result = self._run(True, image) if static else self._track(image)
        if not result.multi_hand_landmarks:
            return []
        worlds = result.multi_hand_world_landmarks or [None] * len(result.multi_hand_landmarks)
        out = []
        for lms, world, handed in zip(
            result.multi_hand_landmarks, worlds, result.multi_handedness, strict=True
        ):
            kp2d = np.array([[p.x * w, p.y * h] for p in lms.landmark], dtype=np.float64)
            kp2d = kp2d[list(MEDIAPIPE_TO_FREIHAND)]
            kp3d = None
            if world is not None:
                kp3d = np.array([[p.x, p.y, p.z] for p in world.landmark])[list(MEDIAPIPE_TO_FREIHAND)]
            cls = handed.classification[0]
            box = np.concatenate([kp2d.min(axis=0), kp2d.max(axis=0)])
            out.append(
                HandDetection(
                    box=box,
                    handedness=mediapipe_handedness_to_image(cls.label),
                    score=float(cls.score),
                    keypoints2d=kp2d,
                    side_confidence=float(cls.score),
                    keypoints3d=kp3d,
                )
            )
        return out

    def reset(self) -> None:
        """Forget the video tracks (a new stream starts)."""
        with self._lock:
            self._rebuild_video(1)
            self._frames = 0

    def _close_graphs(self) -> None:
        for g in (self._video, self._image):
            if g is not None:
                self._warm.discard(id(g))
                g.close()
        self._video = self._image = None
        self._video_hands, self._short = 1, 0

    def close(self) -> None:
        """Release the MediaPipe graphs."""
        with self._lock:
            self._close_graphs()
