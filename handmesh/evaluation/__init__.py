"""Evaluation of any mesh source on any labelled dataset (the engine under `handmesh evaluate`).

`sources` turns a model file or the landmark fit into a mesh source that works on hand crops (the
labelled-box protocol) and as a pipeline estimator (detection, what `handmesh predict` does); `collect`
runs a source over a dataset split in either mode and gathers predictions and labels per labelled hand,
in that hand's own camera, ready for the official 3D scorer and the 2D keypoint scores
(`handmesh.metrics2d`).
"""
