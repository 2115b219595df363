"""Differentiable geometry and mesh operations (rotations, SDF, collision, rendering, metrics)."""
