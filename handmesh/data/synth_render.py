"""Rendering synthetic hand pictures: `SynthRenderer` owns one offscreen renderer and the hand's render
surface (faces for both sides), and draws a labelled hand in two steps.

1. `foreground`: the 3D scene in front of the background -- the hand with procedural skin
   (`handmesh.render.skin`), its forearm (`handmesh.render.forearm`), sometimes a held object -- under
   random lights, as premultiplied RGB + coverage, plus the hand's own silhouette (the label mask: the
   arm and objects never enter it). Its randomness comes from the sample's foreground seed only, so the
   same hand can be composited again and again (FreiHAND's versions, the foreground cache).
2. `compose`: the foreground over a background (procedural photograph-like scenes or the user's photos),
   2D occluders and the camera's effects, from the version's own seed.

A left hand is the mirrored scene -- vertices mirrored, faces reversed, K flipped -- under the same
lights in the camera frame, so lighting never tells the sides apart. `appearance="plain"` keeps the look
the renderer had before: one colour, no arm, a fixed light rig, shapes-and-stripes backgrounds (for
comparisons such as `handmesh bench realism`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from handmesh.data import procedural
from handmesh.data.photo import apply_camera
from handmesh.data.scenes import BackgroundPool, natural_colour, procedural_background
from handmesh.geometry_np import project_points_np, vertex_normals
from handmesh.mirror import mirror_faces

APPEARANCES = ("realistic", "plain")


@dataclass
class Foreground:
    """The rendered scene in front of the background."""

    rgb: np.ndarray  # (H, W, 3) float32, premultiplied by coverage, 0..255
    alpha: np.ndarray  # (H, W, 1) float32 coverage 0..1
    mask: np.ndarray  # (H, W) bool, the hand's silhouette (labels)


def kelvin_rgb(kelvin: float) -> np.ndarray:
    """Approximate RGB (max 1) of a black body at `kelvin`, 2000-10000 K."""
    t = kelvin / 100.0
    r = 1.0 if t <= 66 else np.clip(1.2929 * (t - 60) ** -0.1332, 0, 1)
    g = np.clip(0.3901 * np.log(t) - 0.6318, 0, 1) if t <= 66 else np.clip(1.1298 * (t - 60) ** -0.0755, 0, 1)
    b = 1.0 if t >= 66 else (0.0 if t <= 19 else np.clip(0.5432 * np.log(t - 10) - 1.1962, 0, 1))
    rgb = np.array([r, g, b], np.float64)
    return rgb / rgb.max()


def draw_lights(rng: np.random.Generator) -> tuple[list, np.ndarray]:
    """1-3 directional lights (camera frame) with random directions, colour temperatures and strengths,
    and an ambient term: daylight, lamps, a window, sometimes a back light."""
    from handmesh.render.renderer import Light

    lights = []
    for k in range(int(rng.choice([1, 2, 3], p=[0.3, 0.45, 0.25]))):
        if k == 0 and rng.random() < 0.1:  # back light: the hand between the camera and the light
            d = np.array([rng.normal(0, 0.5), rng.uniform(-0.3, 0.6), -rng.uniform(0.3, 1.0)])
        else:  # from the camera's side, mostly from above
            d = np.array([rng.normal(0, 0.7), rng.uniform(-0.3, 1.0), rng.uniform(0.3, 1.3)])
        colour = kelvin_rgb(rng.uniform(3000, 7000))
        strength = rng.uniform(1.5, 3.8) if k == 0 else rng.uniform(0.3, 1.5)
        lights.append(Light(tuple(d / np.linalg.norm(d)), tuple(colour), float(strength)))
    # sky and room light: near-neutral, so skin stays skin-coloured
    ambient = kelvin_rgb(rng.uniform(4500, 7500)) * rng.uniform(0.15, 0.45)
    return lights, ambient


def _held_object(rng: np.random.Generator, joints: np.ndarray, side: str):
    """A sphere, cylinder or box near the palm, as if held (a `Part`)."""
    import trimesh

    from handmesh.render.renderer import Part

    up = joints[9] - joints[0]
    across = joints[5] - joints[17]
    palmar = np.cross(across, up) * (1.0 if side == "right" else -1.0)
    palmar /= np.linalg.norm(palmar)
    size = rng.uniform(0.015, 0.035)  # metres: a ball, a pen, a cup, a phone
    kind = int(rng.integers(3))
    if kind == 0:
        mesh = trimesh.creation.icosphere(subdivisions=2, radius=size)
    elif kind == 1:
        mesh = trimesh.creation.cylinder(
            radius=size * rng.uniform(0.3, 1.0), height=rng.uniform(0.06, 0.16), sections=24
        )
    else:
        mesh = trimesh.creation.box(extents=rng.uniform(0.01, 0.08, 3) + [0.0, 0.0, size])
    rot = trimesh.transformations.random_rotation_matrix(rng.random(3))[:3, :3]
    # in the palm's hollow, between the fingers and the thumb
    centre = 0.5 * joints[[0, 5, 9, 13, 17]].mean(0) + 0.5 * joints[[2, 6, 10, 14]].mean(0) + palmar * size
    verts = np.asarray(mesh.vertices) @ rot.T + centre
    faces = np.asarray(mesh.faces, np.int64)
    if side == "left":  # the scene is mirrored: keep the object's winding outward too
        faces = mirror_faces(faces)
    return Part(verts, faces, (*(natural_colour(rng) / 255), 1.0), float(rng.uniform(0.2, 0.9)))


def _other_hand(rng: np.random.Generator, positions: np.ndarray):
    """Where the person's other hand goes: a function taking points of the hand (render surface, joints) to
    their mirror image (the other side, the same person), turned and moved beside the hand, a little in
    front of or behind it, so that it overlaps it in part."""
    centre = positions.mean(0).astype(np.float64)
    angles = np.array([rng.normal(0, 0.4), rng.normal(0, 0.4), rng.uniform(-np.pi, np.pi)])
    rot = cv2.Rodrigues(angles)[0] * np.array([-1.0, 1.0, 1.0])  # mirror in x, then turn
    extent = float(np.ptp(positions[:, :2], axis=0).max())
    heading = rng.uniform(0, 2 * np.pi)
    shift = rng.uniform(0.45, 0.9) * extent * np.array([np.cos(heading), np.sin(heading), 0.0])
    shift[2] = rng.choice([-1.0, 1.0]) * rng.uniform(0.02, 0.07)  # in front of or behind the hand
    shift[2] = max(shift[2], 0.08 - centre[2])  # never at the camera

    def move(points: np.ndarray) -> np.ndarray:
        return ((np.asarray(points, np.float64) - centre) @ rot.T + centre + shift).astype(np.float32)

    return move


def subsurface(rgb: np.ndarray, alpha: np.ndarray, amount: float = 0.45) -> np.ndarray:
    """Light scattered under the skin, in screen space: a warm blur of the shading mixed in, so skin looks
    soft rather than like plastic (premultiplied RGB in and out; the blur stays inside the coverage)."""
    sigma = 2.0 * rgb.shape[0] / 224
    blurred = cv2.GaussianBlur(rgb, (0, 0), sigma)
    weight = cv2.GaussianBlur(alpha[..., 0], (0, 0), sigma)[..., None]
    soft = blurred / np.maximum(weight, 1e-3) * alpha * np.array([1.08, 0.95, 0.88], np.float32)
    return (1 - amount) * rgb + amount * soft


def occlusion(depth: np.ndarray, strength: float) -> np.ndarray:
    """Shading (H, W, 1) that darkens what lies behind its surroundings -- between touching fingers, under
    a finger lying on the palm, in the palm's hollow -- from the depth map alone (unsharp-masked depth)."""
    covered = (depth > 0).astype(np.float32)
    sigma = 4.0 * depth.shape[0] / 224
    near = cv2.GaussianBlur(depth * covered, (0, 0), sigma)
    near = near / np.maximum(cv2.GaussianBlur(covered, (0, 0), sigma), 1e-3)
    behind = np.clip(depth - near, 0, None) * covered  # metres behind the neighbourhood's mean depth
    return (1 - strength * (1 - np.exp(-behind / 0.012)))[..., None].astype(np.float32)


def smooth_outline(rgb: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Anti-aliasing for a single-sampled layer (premultiplied RGB (H,W,3), coverage (H,W,1)): the layer
    blurred by about half a pixel along its outline only, so edges are soft and the inside stays sharp."""
    a = alpha[..., 0]
    # coverage in steps of 1/255, like a render's own alpha: the foreground cache stores it as uint8 and its
    # pictures stay the stream's own
    soft = np.round(cv2.GaussianBlur(a, (3, 3), 0.6) * 255) * np.float32(1 / 255)
    edge = (np.abs(soft - a) > 1e-3)[..., None]
    return np.where(edge, cv2.GaussianBlur(rgb, (3, 3), 0.6), rgb), np.where(edge, soft[..., None], alpha)


def closed_mesh(faces: np.ndarray) -> bool:
    """Whether every edge of the mesh borders exactly two faces (a watertight surface)."""
    from handmesh.render.subdivide import mesh_edges

    return bool((mesh_edges(np.asarray(faces, np.int64))[2] == 2).all())


def hand_silhouette(
    vertices: np.ndarray, faces: np.ndarray, K: np.ndarray, size: int, closed: bool = False
) -> np.ndarray:
    """The hand model's silhouette (size, size) bool: its triangles filled in the image (no GL).

    `closed`: the faces form a closed, outward-wound surface, whose silhouette its camera-facing triangles
    alone cover (about half the triangles to fill)."""
    uv = project_points_np(np.asarray(vertices, np.float64), np.asarray(K, np.float64))
    # 4x4 samples per pixel, a pixel in the mask when half its samples are: the renderer's own coverage
    # rule (pixel centres at integer coordinates), not every pixel an edge touches
    fine = np.zeros((4 * size, 4 * size), np.uint8)
    tri = np.round((4 * uv[faces] + 1.5) * 16).astype(np.int32)  # 4 fractional bits
    if closed:
        d1, d2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
        # outward winding is counter-clockwise seen from the camera; image y points down
        tri = tri[d1[:, 0].astype(np.int64) * d2[:, 1] - d1[:, 1].astype(np.int64) * d2[:, 0] <= 0]
    for t in tri:
        cv2.fillConvexPoly(fine, t, 255, cv2.LINE_8, 4)
    # the share of covered samples by area averaging (8 of 16 samples: 127.5; 7 of 16: 111.6)
    return cv2.resize(fine, (size, size), interpolation=cv2.INTER_AREA) >= 120


class SynthRenderer:
    """One offscreen renderer and the hand's render surface: renders synthetic hand pictures.

    Whoever renders holds one (a `SynthStream` in each loader process, each `handmesh synth` worker);
    `close` frees its GL context.
    """

    def __init__(self, size: int, faces: np.ndarray, surface=None, gl_threads: int | None = None) -> None:
        import os

        os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
        if gl_threads:
            # llvmpipe starts one render thread per core in every process; more workers -> fewer each
            os.environ["LP_NUM_THREADS"] = str(gl_threads)
        from handmesh.render import MeshRenderer

        self.size = int(size)
        self.faces = {"right": np.asarray(faces, np.int64), "left": mirror_faces(np.asarray(faces, np.int64))}
        self.closed = closed_mesh(self.faces["right"])
        self.surface = surface
        if surface is not None:
            self.surface_faces = {"right": surface.faces, "left": mirror_faces(surface.faces)}
            self.nail_faces = surface.nail_faces
        # realistic pictures render single-sampled and smooth their own outline (`smooth_outline`): on
        # llvmpipe 4x multisampling of the subdivided hand cost about a third of a picture; plain pictures
        # keep the look (and cost) they always had
        self.renderer = MeshRenderer(self.size, self.size, samples=4 if surface is None else 1)

    def close(self) -> None:
        """Free the GL context."""
        self.renderer.close()

    def foreground(self, cfg, vertices, joints, K, side: str, skin, rng: np.random.Generator) -> Foreground:
        """The hand (and arm, and object) of one sample under random lights (`cfg`: a SynthConfig)."""
        from handmesh.render.renderer import Part

        vertices = np.asarray(vertices, np.float32)
        joints = np.asarray(joints, np.float64)
        if cfg.appearance == "plain" or self.surface is None:
            return self._plain(vertices, K, side, skin, rng)
        from handmesh.render.forearm import draw_arm_look, forearm_mesh
        from handmesh.render.skin import draw_skin_look, shade

        look = draw_skin_look(rng, skin)
        colours = shade(self.surface, look)
        faces = self.surface_faces[side]
        positions = self.surface.positions(vertices, faces)
        nails = self.nail_faces
        normals = vertex_normals(positions, faces)  # once for both materials, smooth across the nail's rim
        parts = [
            Part(positions, faces[~nails], colours, look.roughness, normals),
            Part(positions, faces[nails], colours, 0.25, normals),  # nail plates: glossier
        ]
        arm = draw_arm_look(rng, cfg.sleeve_prob, cfg.band_prob) if rng.random() < cfg.forearm_prob else None

        def arm_part(arm_joints: np.ndarray, arm_side: str) -> Part:
            v, f, c = forearm_mesh(arm_joints, arm_side, arm, look.back, look.palm, K, self.size)
            return Part(v, f, c, look.roughness if arm.sleeve_from is None else 0.85)

        if arm is not None:
            parts.append(arm_part(joints, side))
        if rng.random() < cfg.object_prob:
            parts.append(_held_object(rng, joints, side))
        if rng.random() < cfg.other_hand_prob:  # the same person's other hand, in the same sleeves
            other = "left" if side == "right" else "right"
            move = _other_hand(rng, positions)
            parts.append(Part(move(positions), self.surface_faces[other], colours, look.roughness))
            if arm is not None:
                parts.append(arm_part(move(joints), other))
        lights, ambient = draw_lights(rng)
        rgba, depth = self.renderer.render_scene(parts, K, depth=True, lights=lights, ambient=ambient)
        alpha = rgba[..., 3:4].astype(np.float32) / 255.0
        mask = hand_silhouette(vertices, self.faces[side], K, self.size, self.closed)
        rgb = rgba[..., :3].astype(np.float32) * occlusion(depth, float(rng.uniform(0.35, 0.7)))
        return Foreground(*smooth_outline(subsurface(rgb, alpha), alpha), mask)

    def _plain(self, vertices, K, side, skin, rng) -> Foreground:
        """The look before realistic rendering: one colour under the fixed rig, random gain and ramp."""
        rgba, depth = self.renderer.render([(vertices, self.faces[side], (*skin, 1.0))], K)
        alpha = rgba[..., 3:4].astype(np.float32) / 255.0
        rgb = rgba[..., :3].astype(np.float32)
        h, w = depth.shape
        gain = rng.uniform(0.55, 1.35) * np.array([1.0, *rng.uniform(0.9, 1.1, 2)], np.float32)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) / max(h, w)
        g = rng.normal(0, 0.6, 2)
        ramp = np.clip(1 + g[0] * (xx - 0.5) + g[1] * (yy - 0.5), 0.3, 1.7)[..., None]
        return Foreground(rgb * gain * ramp, alpha, depth > 0)


def compose(
    cfg, fg: Foreground, rng: np.random.Generator, backgrounds: BackgroundPool | None = None
) -> np.ndarray:
    """The picture: the foreground over a background, occluders, the camera's effects (RGB uint8)."""
    size = fg.rgb.shape[0]
    plain = cfg.appearance == "plain"
    background = None
    if backgrounds is not None and rng.random() < cfg.photo_background_prob:
        background = backgrounds.draw(rng, size, size)
    if background is None:
        make = procedural.random_background if plain else procedural_background
        background = make(rng, size, size)
    image = background.astype(np.float32) * (1 - fg.alpha) + fg.rgb
    if rng.random() < cfg.occluder_prob and fg.mask.any():
        ys, xs = np.nonzero(fg.mask)
        image, _ = procedural.add_occluders(
            np.clip(image, 0, 255).astype(np.uint8), rng, (xs.min(), ys.min(), xs.max(), ys.max())
        )
    if plain:
        image = procedural.colour_jitter(np.clip(image, 0, 255).astype(np.uint8), rng, 0.15, 0.15, 0.2, 0.02)
    return apply_camera(image, rng, cfg.camera)
