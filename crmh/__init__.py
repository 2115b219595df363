"""crmh: reconstruct the people in an image, coherently (the Python API and the
``crmh`` command). See :mod:`crmh.predictor` and :mod:`crmh.cli`."""

from crmh.predictor import Person, Prediction, Predictor

__all__ = ["Person", "Prediction", "Predictor"]
