"""Offscreen rendering: meshes land where K projects them, overlays touch only the hand's region."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

K = np.array([[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]])
CENTRE = np.array([0.05, 0.03, 0.5])


@pytest.fixture(scope="module")
def renderer(egl):
    from handmesh.render import MeshRenderer

    r = MeshRenderer(640, 480)
    yield r
    r.close()


def _sphere(radius=0.03, centre=CENTRE):
    s = trimesh.creation.icosphere(subdivisions=3, radius=radius)
    return s.vertices + centre, s.faces


def test_render_projects_where_K_says(renderer):
    from handmesh.geometry_np import project_points_np as project

    v, f = _sphere()
    rgba, depth = renderer.render([(v, f, (1.0, 0.7, 0.5, 1.0))], K)
    assert rgba.shape == (480, 640, 4) and rgba.dtype == np.uint8
    assert depth.shape == (480, 640)
    ys, xs = np.nonzero(rgba[..., 3] > 127)
    assert len(xs) > 100
    expected = project(CENTRE[None], K)[0]
    assert abs(xs.mean() - expected[0]) < 1.0 and abs(ys.mean() - expected[1]) < 1.0
    # the sphere's image radius is about f * r / z = 30 px
    assert 25 < (xs.max() - xs.min()) / 2 < 35
    cy, cx = int(round(expected[1])), int(round(expected[0]))
    assert abs(depth[cy, cx] - (CENTRE[2] - 0.03)) < 2e-3
    assert depth[0, 0] == 0 and rgba[0, 0, 3] == 0
    # lit, not black: smooth shading with the light rig
    assert rgba[cy, cx, :3].mean() > 100


def test_render_puts_pixel_centres_where_opencv_does(renderer):
    """A square symmetric about the optical axis renders centred on (cx, cy) to a tenth of a pixel: pixel i's
    centre is coordinate i, as for OpenCV and every label (pyrender's own convention is half a pixel off)."""
    Kc = np.array([[100.0, 0, 31.5], [0, 100.0, 23.5], [0, 0, 1]])
    d = 0.05
    v = np.array([[-d, -d, 1.0], [d, -d, 1.0], [d, d, 1.0], [-d, d, 1.0]])
    f = np.array([[0, 1, 2], [0, 2, 3], [0, 2, 1], [0, 3, 2]])
    rgba, _ = renderer.render([(v, f, (1, 1, 1, 1))], Kc, size=(64, 48))
    ys, xs = np.nonzero(rgba[..., 3] > 0)
    assert abs(xs.mean() - 31.5) < 0.1 and abs(ys.mean() - 23.5) < 0.1


def test_render_empty_and_custom_size(renderer):
    rgba, depth = renderer.render([], K)
    assert rgba.shape == (480, 640, 4) and not rgba.any() and not depth.any()
    v, f = _sphere()
    rgba, _ = renderer.render([(v, f, (1, 1, 1, 1))], K, size=(200, 100))
    assert rgba.shape == (100, 200, 4)


def test_colour_only_render_equals_full_render(renderer):
    """depth=False skips the depth readback and changes nothing else; depth comes back again after it."""
    v, f = _sphere()
    mesh = [(v, f, (1.0, 0.7, 0.5, 1.0))]
    rgba, depth = renderer.render(mesh, K)
    rgba_only, none = renderer.render(mesh, K, depth=False)
    assert none is None and np.array_equal(rgba, rgba_only) and (rgba[..., 3] > 0).sum() > 1000
    _, depth_again = renderer.render(mesh, K)
    assert depth_again is not None and np.array_equal(depth, depth_again) and (depth > 0).any()


@pytest.mark.parametrize("max_render_size", [320, 24])
def test_overlay_matches_full_render_and_only_touches_region(renderer, max_render_size):
    v, f = _sphere()
    meshes = [(v, f, (1.0, 0.7, 0.5, 1.0))]
    frame = np.full((480, 640, 3), 60, np.uint8)
    out = renderer.overlay(frame, meshes, K, opacity=1.0, max_render_size=max_render_size)
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert (frame == 60).all(), "the input frame must not be modified"
    changed = np.abs(out.astype(int) - frame).sum(-1) > 30
    full = renderer.render(meshes, K)[0][..., 3] > 127
    iou = (changed & full).sum() / (changed | full).sum()
    assert iou > (0.95 if max_render_size >= 100 else 0.8)
    ys, xs = np.nonzero(changed)
    assert xs.min() > 250 and xs.max() < 420 and ys.min() > 200 and ys.max() < 320


def test_overlay_no_mesh_or_offscreen_returns_frame(renderer):
    frame = np.zeros((48, 64, 3), np.uint8)
    assert renderer.overlay(frame, [], K) is frame
    v, f = _sphere(centre=np.array([0.0, 0.0, -1.0]))  # behind the camera
    assert renderer.overlay(frame, [(v, f, (1, 1, 1, 1))], K) is frame


def test_composite_opacity():
    from handmesh.render import composite

    frame = np.full((4, 4, 3), 100, np.uint8)
    patch = np.zeros((2, 2, 4), np.uint8)
    patch[...] = (200, 200, 200, 255)
    assert (composite(frame, patch, (1, 1), opacity=0.0) == frame).all()
    out = composite(frame, patch, (1, 1), opacity=0.5)
    assert out[1, 1, 0] == 150 and out[0, 0, 0] == 100


def test_draw_skeleton_draws_bones():
    from handmesh.render import draw_skeleton

    img = np.zeros((64, 64, 3), np.uint8)
    pts = np.stack([np.linspace(5, 58, 21), np.full(21, 32.0)], 1)
    parents = [-1] + list(range(20))
    draw_skeleton(img, pts, (0, 255, 0), 1, parents=parents)
    assert img[32, 10:55, 1].min() > 0 and img[5:20, :, 1].max() == 0


def test_render_from_another_thread(renderer):
    """Gradio calls handlers from worker threads: the context must not stay bound to one thread."""
    import threading

    v, f = _sphere()
    results = []

    def work():
        rgba, _ = renderer.render([(v, f, (1, 1, 1, 1))], K)
        results.append(int((rgba[..., 3] > 0).sum()))

    for _ in range(2):
        t = threading.Thread(target=work)
        t.start()
        t.join()
    work()
    assert len(results) == 3 and min(results) > 100


def test_separate_hands_render_as_separate_regions(renderer):
    left = _sphere(centre=np.array([-0.15, 0.0, 0.5]))
    right = _sphere(centre=np.array([0.15, 0.0, 0.5]))
    near = _sphere(centre=np.array([0.17, 0.01, 0.45]))
    apart = renderer.render_regions([(*left, (1, 1, 1, 1)), (*right, (1, 1, 1, 1))], K, (640, 480))
    assert len(apart) == 2 and all(p[0].shape[1] < 120 for p in apart)
    together = renderer.render_regions([(*right, (1, 1, 1, 1)), (*near, (1, 0, 0, 1))], K, (640, 480))
    assert len(together) == 1
    frame = np.zeros((480, 640, 3), np.uint8)
    timings: dict[str, float] = {}
    out = renderer.overlay(frame, [(*left, (1, 1, 1, 1)), (*right, (1, 1, 1, 1))], K, 1.0, timings=timings)
    assert out[240, 170].sum() > 100 and out[240, 470].sum() > 100 and out[240, 320].sum() == 0
    assert timings["render"] > 0 and timings["composite"] > 0  # the pipeline's render/composite stages


def test_closing_one_renderer_leaves_the_others_working(renderer):
    """pyrender terminates the process-wide EGL display when a renderer is deleted; only the last may."""
    import gc
    import weakref

    from handmesh.render import MeshRenderer

    v, f = _sphere()
    mesh = [(v, f, (1.0, 0.7, 0.5, 1.0))]
    before, _ = renderer.render(mesh, K)
    other = MeshRenderer(64, 64)
    other.render(mesh, K, size=(64, 64))
    other.close()
    dropped = MeshRenderer(64, 64)
    gone = weakref.ref(dropped)
    del dropped  # no reference cycle: freed at once, its context released at the next safe point
    assert gone() is None
    gc.collect()
    after, _ = renderer.render(mesh, K)
    assert np.array_equal(before, after) and (after[..., 3] > 0).sum() > 1000


# ----------------------------------------------------------------------------- overlay planning (no GL)


def test_plan_overlay_groups_overlapping_hands_and_drops_offscreen_ones():
    from handmesh.render.overlay import plan_overlay

    left = (*_sphere(centre=np.array([-0.15, 0.0, 0.5])), (1, 1, 1, 1))
    right = (*_sphere(centre=np.array([0.15, 0.0, 0.5])), (1, 1, 1, 1))
    near = (*_sphere(centre=np.array([0.17, 0.01, 0.45])), (1, 0, 0, 1))
    behind = (*_sphere(centre=np.array([0.0, 0.0, -1.0])), (1, 1, 1, 1))
    views = plan_overlay([left, right, behind], K, (640, 480))
    assert [len(v.meshes) for v in views] == [1, 1]
    # the sphere at x=-0.15 m, z=0.5 m projects around u = 320 - 150 = 170 px
    assert views[0].box[0] < 170 < views[0].box[2] and views[1].box[0] < 470 < views[1].box[2]
    (together,) = plan_overlay([right, near], K, (640, 480))
    assert len(together.meshes) == 2
    assert plan_overlay([behind], K, (640, 480)) == [] and plan_overlay([], K, (640, 480)) == []


def test_region_view_camera_renders_exactly_the_box():
    from handmesh.geometry_np import project_points_np
    from handmesh.render.overlay import VIEWPORT_STEP, region_view

    box = (100, 50, 500, 250)  # 400 x 200 px
    view = region_view([], box, K, max_render_size=100)
    assert view.render_size == (100, 50) and view.viewport == (4 * VIEWPORT_STEP, 2 * VIEWPORT_STEP)
    pts = np.array([[0.01, -0.02, 0.6], [-0.1, 0.05, 0.9]])
    uv = project_points_np(pts, K)
    uv_region = project_points_np(pts, view.K)
    # frame pixel u maps to region pixel (u - x0 + 0.5) * scale - 0.5 (cv2.resize's pixel centres)
    expected = (uv - np.array(box[:2]) + 0.5) * 0.25 - 0.5
    np.testing.assert_allclose(uv_region, expected, atol=1e-9)
    full = region_view([], box, K, max_render_size=1000)
    assert full.render_size == (400, 200) and full.viewport == (416, 224)


def test_region_box_is_clipped_to_the_frame():
    from handmesh.render.overlay import region_box

    mesh = (*_sphere(centre=np.array([-0.3, 0.0, 0.5])), (1, 1, 1, 1))  # centre at u = 20 px, radius 30
    x0, y0, x1, y1 = region_box([mesh], K, (640, 480), margin=6)
    assert x0 == 0 and 50 < x1 < 65 and 200 < y0 < y1 < 280
    assert region_box([mesh], K, (10, 10)) is None  # entirely outside a tiny frame's rows


def test_single_sampled_renderer_has_hard_edges_and_keeps_them_after_a_resize(egl):
    """`samples=1` renders without multisampling (every pixel covered or not), also after the target is
    rebuilt for another size; the default 4x gives partly covered pixels along the outline, in the same place."""
    from handmesh.render import MeshRenderer

    v, f = _sphere()
    hard, soft = MeshRenderer(640, 480, samples=1), MeshRenderer(640, 480)
    try:
        for size, Ks in (((640, 480), K), ((320, 240), K * [[0.5], [0.5], [1]])):
            a = hard.render([(v, f, (1.0, 0.7, 0.5, 1.0))], Ks, size=size)[0][..., 3]
            b = soft.render([(v, f, (1.0, 0.7, 0.5, 1.0))], Ks, size=size)[0][..., 3]
            assert set(np.unique(a)) == {0, 255}
            outline = ((b > 0) & (b < 255)).sum()
            assert outline > 50
            # the same disc: the coverage counts differ by less than half the partly covered pixels
            assert abs(int((a > 127).sum()) - int((b > 127).sum())) < 0.5 * outline
    finally:
        hard.close()
        soft.close()
