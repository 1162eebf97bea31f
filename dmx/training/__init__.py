"""What Lightning trains, and how: the LightningModules (mlm: masked-language-model
pretraining; classify: fine-tuning on a labelled task; scores: GLUE's metrics), the
optimizer and its schedule (optim), the Trainer built from the impl settings (trainer), and
the encoder a run builds, keeps and hands downstream (encoder).

Layer 5 of 9: beside report; may import data, masking, the model, config and common. Nothing
is imported here, so reading one file does not load Lightning.
"""
