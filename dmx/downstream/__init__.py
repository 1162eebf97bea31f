"""What is measured after pretraining, from the encoder a run kept: fine-tuning under the
protocol (finetune/), the encoder as a transformers model (export). A new downstream task or
evaluation goes here, its data reader under dmx/data/.

Layer 4 of 9: beside tracking; may import training, report, data, masking, the model,
config and common, never the run or the CLI.
"""
