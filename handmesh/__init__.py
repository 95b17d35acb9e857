"""handmesh: real-time 3D hand mesh recovery from a single RGB image."""

__version__ = "0.1.0"
