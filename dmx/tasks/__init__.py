"""The LightningModules: what is trained and scored. Pretraining (masked-language modelling)
and, beside it, fine-tuning the pretrained encoder on a labelled task."""

from dmx.tasks.classify import ClassifierModule
from dmx.tasks.mlm import MLMModule

__all__ = ["ClassifierModule", "MLMModule"]
