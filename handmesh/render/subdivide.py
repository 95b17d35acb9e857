"""Loop subdivision as a fixed sparse matrix: a smoother, denser copy of a mesh for rendering only.

The subdivided positions are a linear function of the original ones, so the matrix is built once per
topology and every frame costs one sparse product. Boundary edges (MANO's open wrist) follow the
boundary rules, so the outline of an open mesh does not shrink.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def mesh_edges(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unique undirected edges (E,2), each face's three edge ids (F,3), and each edge's face count."""
    half = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    key = np.sort(half, axis=1)
    edges, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    face_edges = inverse.reshape(3, -1).T
    return edges, face_edges, counts


def loop_step(faces: np.ndarray, n_vertices: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """One Loop step: (matrix (V'+E, V) mapping old vertices to new ones, the new faces)."""
    faces = np.asarray(faces, np.int64)
    edges, face_edges, counts = mesh_edges(faces)
    n_edges = len(edges)
    boundary = counts == 1
    rows, cols, vals = [], [], []

    # odd (edge) vertices: 3/8 of each end + 1/8 of each opposite corner; boundary edges: the midpoint
    for k in range(3):
        a, b, c = faces[:, k], faces[:, (k + 1) % 3], faces[:, (k + 2) % 3]
        e = face_edges[:, k]  # edge (a, b), opposite corner c
        interior = ~boundary[e]
        rows += [n_vertices + e[interior]] * 3
        cols += [a[interior], b[interior], c[interior]]
        vals += [
            np.full(interior.sum(), 3 / 16),
            np.full(interior.sum(), 3 / 16),
            np.full(interior.sum(), 1 / 8),
        ]
    bidx = np.nonzero(boundary)[0]
    rows += [n_vertices + bidx, n_vertices + bidx]
    cols += [edges[bidx, 0], edges[bidx, 1]]
    vals += [np.full(len(bidx), 0.5), np.full(len(bidx), 0.5)]
    # (the interior 3/16 above is half of 3/8: each interior edge is visited from both of its faces)

    # even (old) vertices: Warren's weights inside, 3/4 + 1/8 + 1/8 along a boundary
    valence = np.bincount(edges.ravel(), minlength=n_vertices).astype(np.float64)
    on_boundary = np.zeros(n_vertices, bool)
    on_boundary[edges[bidx].ravel()] = True
    beta = np.where(valence == 3, 3 / 16, 3 / (8 * np.maximum(valence, 1)))
    inner_edges = edges[~boundary]
    for u, v in ((inner_edges[:, 0], inner_edges[:, 1]), (inner_edges[:, 1], inner_edges[:, 0])):
        keep = ~on_boundary[u]
        rows.append(u[keep])
        cols.append(v[keep])
        vals.append(beta[u[keep]])
    for u, v in ((edges[bidx, 0], edges[bidx, 1]), (edges[bidx, 1], edges[bidx, 0])):
        rows.append(u)
        cols.append(v)
        vals.append(np.full(len(u), 1 / 8))
    ids = np.arange(n_vertices)
    rows.append(ids)
    cols.append(ids)
    vals.append(np.where(on_boundary, 3 / 4, 1 - valence * beta))

    matrix = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_vertices + n_edges, n_vertices),
    )
    m = n_vertices + face_edges  # the new vertex on each face's edges (a,b), (b,c), (c,a)
    new_faces = np.concatenate(
        [
            np.stack([faces[:, 0], m[:, 0], m[:, 2]], 1),
            np.stack([faces[:, 1], m[:, 1], m[:, 0]], 1),
            np.stack([faces[:, 2], m[:, 2], m[:, 1]], 1),
            np.stack([m[:, 0], m[:, 1], m[:, 2]], 1),
        ]
    )
    return matrix, new_faces


def loop_subdivision(faces: np.ndarray, n_vertices: int, levels: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """`levels` Loop steps composed: (matrix (V_levels, V), faces of the subdivided mesh)."""
    matrix = sp.identity(n_vertices, format="csr")
    faces = np.asarray(faces, np.int64)
    for _ in range(int(levels)):
        step, faces = loop_step(faces, matrix.shape[0])
        matrix = (step @ matrix).tocsr()
    return matrix, faces
