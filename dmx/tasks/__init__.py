"""The LightningModules: what is trained and scored. Pretraining now; fine-tuning beside it."""

from dmx.tasks.mlm import MLMModule

__all__ = ["MLMModule"]
