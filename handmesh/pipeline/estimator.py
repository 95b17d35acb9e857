"""Mesh sources: turn a frame's hand detections into meshes in the frame's camera.

`ModelEstimator` runs the trained regressor on square crops (left hands flipped); `LandmarkFitEstimator`
fits the hand model to MediaPipe's landmarks (no checkpoint needed). Both fill the same `HandEstimate`,
with the same parameters: `global_orient` (3,) and `hand_pose` (45,) axis-angle (the articulation
relative to the mean hand, FreiHAND's convention), `betas` (10,), `transl` (3,) metres, for the right
hand model in the mirrored world when `mirrored` (a left hand); `HandEstimate.model_params()` gives them
for the hand model of the hand's own side (handmesh.pipeline.schema).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Protocol

import numpy as np

from handmesh.geometry_np import matrix_to_axis_angle_np
from handmesh.hand_model import mirror_faces, mirror_vertices
from handmesh.mirror import mirror_params
from handmesh.pipeline.crop import crop_hand, square_box
from handmesh.pipeline.detector import HandDetection
from handmesh.pipeline.runtime import Runtime

# the parameters every mesh source gives, in this order (the hand model's forward arguments)
PARAM_KEYS = ("global_orient", "hand_pose", "betas", "transl")


@dataclasses.dataclass
class HandEstimate:
    """One hand's mesh in the frame's camera (metres, OpenCV axes) and what it came from."""

    vertices: np.ndarray  # (778, 3)
    joints: np.ndarray  # (21, 3) FreiHAND order
    faces: np.ndarray  # (F, 3), winding already reversed for left hands
    handedness: str
    score: float
    track_id: int
    box: np.ndarray  # (4,) detection box, frame pixels
    params: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    source: str = "model"
    hand_model: str | None = None  # the kind of hand model the parameters belong to: "mano" or "standin"
    side_confidence: float = 1.0  # probability of `handedness` (HandDetection.side_confidence)
    body_side: str | None = None  # the body's side for this hand, where a body was seen

    @property
    def implausible(self) -> bool:
        """Whether a plausibility check failed (`params["implausible"]` names them): drawn grey, tagged "?"."""
        return len(np.atleast_1d(self.params.get("implausible", []))) > 0

    def model_params(self) -> dict[str, np.ndarray]:
        """global_orient (3,), hand_pose (45,), betas (10,), transl (3,) for the hand model of this hand's
        own side (a left hand's are the left model's: `handmesh.mirror.mirror_params`)."""
        params = {
            k: np.asarray(self.params[k], dtype=np.float64).reshape(-1)
            for k in PARAM_KEYS
            if k in self.params
        }
        return mirror_params(params) if bool(self.params.get("mirrored", False)) else params

    @classmethod
    def of_detection(
        cls,
        det: HandDetection,
        vertices,
        joints,
        faces: np.ndarray,
        params: dict,
        source: str,
        hand_model: str | None = None,
    ) -> HandEstimate:
        """A mesh (float32) with what the detector said about its hand (side, score, track, box)."""
        return cls(
            vertices=np.asarray(vertices, dtype=np.float32),
            joints=np.asarray(joints, dtype=np.float32),
            faces=faces,
            handedness=det.handedness,
            score=float(det.score),
            track_id=det.track_id,
            box=np.asarray(det.box, dtype=np.float64),
            params=params,
            source=source,
            hand_model=hand_model,
            side_confidence=float(det.side_confidence),
            body_side=det.body_side,
        )


class MeshEstimator(Protocol):
    """Detections of one frame -> meshes; adds its stage times (ms) to `timings`."""

    name: str

    def estimate(
        self,
        frame: np.ndarray,
        detections: list[HandDetection],
        K: np.ndarray,
        timings: dict[str, float],
        static: bool = False,
    ) -> list[HandEstimate]:
        """Meshes for `detections` in the camera K of `frame`.

        `static=True`: an unrelated still image, whose answer must not depend on earlier frames (no warm
        start from them) nor change what the next stream frame starts from.
        """
        ...


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0


class ModelEstimator:
    """Crop -> regressor (one batch per frame) -> camera conversion into the frame's camera."""

    source = "model"

    def __init__(self, runtime: Runtime, crop_scale: float = 1.5):
        self.runtime = runtime
        self.crop_scale = float(crop_scale)
        self.name = f"FastViT regressor: {runtime.name}"
        self.faces = np.asarray(runtime.faces, dtype=np.int64)
        self.left_faces = mirror_faces(self.faces)
        self.hand_model = getattr(runtime, "hand_model_kind", None)

    def estimate(
        self,
        frame: np.ndarray,
        detections: list[HandDetection],
        K: np.ndarray,
        timings: dict[str, float],
        static: bool = False,
    ) -> list[HandEstimate]:
        """Meshes for `detections` in the camera K of `frame` (stateless: `static` changes nothing)."""
        from handmesh.models.camera import crop_to_camera

        if not detections:
            return []
        size = self.runtime.input_size
        t0 = time.perf_counter()
        crops = [
            crop_hand(frame, square_box(d.box, self.crop_scale), K, size, mirror=d.handedness == "left")
            for d in detections
        ]
        batch = np.stack([c.image for c in crops])
        timings["crop"] = timings.get("crop", 0.0) + _ms(t0)

        t0 = time.perf_counter()
        out = self.runtime(batch)
        timings["model"] = timings.get("model", 0.0) + _ms(t0)

        t0 = time.perf_counter()
        # float64 numpy throughout: the runtimes return numpy, and a detour through torch per hand costs
        # more than this arithmetic
        cam = np.asarray(out["cam"], dtype=np.float64)
        K_crop = np.stack([c.K for c in crops])
        verts = np.asarray(out["vertices"], dtype=np.float64)
        joints = np.asarray(out["joints"], dtype=np.float64)
        results = []
        for i, (det, crop) in enumerate(zip(detections, crops, strict=True)):
            # crop_to_camera handles one mirrored flag per call; hands are at most a handful per frame.
            sl = slice(i, i + 1)
            v = crop_to_camera(verts[sl], cam[sl], K_crop[sl], size, mirrored=crop.mirrored)[0]
            j = crop_to_camera(joints[sl], cam[sl], K_crop[sl], size, mirrored=crop.mirrored)[0]
            params = {k: np.asarray(out[k][i]) for k in ("betas", "cam") if k in out}
            # the network gives rotation matrices; every mesh source reports axis-angle
            for k in ("global_orient", "hand_pose"):
                if k in out:
                    params[k] = matrix_to_axis_angle_np(np.asarray(out[k][i], np.float64)).reshape(-1)
            # Parameters describe the right hand the network saw; for a flipped crop that hand sits in
            # the mirrored camera, so its translation is taken before mirroring back.
            seen = mirror_vertices(j) if crop.mirrored else j
            params["transl"] = seen[0] - joints[i, 0]
            params["crop_box"] = crop.box
            params["mirrored"] = np.array(crop.mirrored)
            faces = self.left_faces if crop.mirrored else self.faces
            results.append(HandEstimate.of_detection(det, v, j, faces, params, "model", self.hand_model))
        timings["hand_model"] = timings.get("hand_model", 0.0) + _ms(t0)
        return results


class LandmarkFitEstimator:
    """The hand model fitted to MediaPipe's 21 world + image landmarks (no trained checkpoint needed).

    Its accuracy is bounded by the landmarks; in a stream it warm-starts each track from its previous fit.
    """

    source = "landmark-fit"

    def __init__(self, hand_model=None, config=None):
        from handmesh.fit import FitConfig, default_hand_model, fit_keypoints

        self._fit = fit_keypoints
        self.config = config or FitConfig()
        self.hand = hand_model if hand_model is not None else default_hand_model()
        # the fit's hand_pose is relative to this mean pose; the plausibility check needs it flat-relative
        self.hands_mean = self.hand.hands_mean.detach().double().cpu().numpy()
        self.faces = np.asarray(self.hand.faces, dtype=np.int64)
        self.left_faces = mirror_faces(self.faces)
        self.name = f"landmark fit ({self.hand.kind} hand model fitted to MediaPipe landmarks)"
        self._previous: dict[int, dict[str, np.ndarray]] = {}

    def estimate(
        self,
        frame: np.ndarray,
        detections: list[HandDetection],
        K: np.ndarray,
        timings: dict[str, float],
        static: bool = False,
    ) -> list[HandEstimate]:
        """Meshes for the detections that carry landmarks (others are skipped); a still image
        (`static=True`) is fitted from the mean hand and leaves the tracks' warm starts alone."""
        dets = [d for d in detections if d.keypoints3d is not None and d.keypoints2d is not None]
        if not dets:
            return []
        t0 = time.perf_counter()
        j3 = np.stack([d.keypoints3d for d in dets]).astype(np.float64)
        j2 = np.stack([d.keypoints2d for d in dets]).astype(np.float64)
        Ks = np.repeat(np.asarray(K, dtype=np.float64)[None], len(dets), axis=0)
        sides = [d.handedness for d in dets]
        init = None
        prev = [None if static or d.track_id < 0 else self._previous.get(d.track_id) for d in dets]
        known = next((p for p in prev if p is not None), None)
        if known is not None:
            # hands without a previous fit (a new track) get NaN rows: the fitter cold-starts only them
            init = {
                k: np.stack([p[k] if p is not None else np.full_like(v, np.nan) for p in prev])
                for k, v in known.items()
            }
        res = self._fit(j3, j2, Ks, side=sides, init=init, hand_model=self.hand, config=self.config)
        timings["hand_model"] = timings.get("hand_model", 0.0) + _ms(t0)
        verts, joints = np.asarray(res.vertices), np.asarray(res.joints)
        out = []
        live = {}
        for i, d in enumerate(dets):
            params = {k: np.asarray(v[i]) for k, v in res.params.items()}
            live[d.track_id] = params
            left = d.handedness == "left"  # fitted as the right hand in the mirrored world
            params = dict(params, fit_error_m=np.asarray(res.error[i]), mirrored=np.array(left))
            faces = self.left_faces if left else self.faces
            out.append(
                HandEstimate.of_detection(
                    d, verts[i], joints[i], faces, params, "landmark-fit", self.hand.kind
                )
            )
        if not static:
            self._previous = live
        return out

    def reset(self) -> None:
        """Forget the warm starts (a new stream or an unrelated image)."""
        self._previous = {}
