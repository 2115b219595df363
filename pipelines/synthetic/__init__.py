"""The synthetic world of the embedded default: Anny people in procedural scenes.

- :mod:`~pipelines.synthetic.poses`: poses by activity, phenotypes, and the adversarial
  prior's synthetic "real" samples;
- :mod:`~pipelines.synthetic.scenes`: cameras and layouts of people on a ground plane;
- :mod:`~pipelines.synthetic.render`: shaded, coloured people over a backdrop;
- :mod:`~pipelines.synthetic.generator`: one annotated sample per index, deterministic.
"""

from pipelines.synthetic.generator import SceneGenerator, SplitSpec, SyntheticConfig, split_name

__all__ = ["SceneGenerator", "SplitSpec", "SyntheticConfig", "split_name"]
