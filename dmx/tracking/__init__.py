"""Following runs from outside: W&B (wandb_run: the logger, the fine-tuning run, modes and
credentials; names: a run's group and name, its sweep cell; sweep: dmx sweep --wandb;
sync: dmx sync; report_run: the report as a W&B run). A new W&B feature goes here.

Layer 4 of 9: beside downstream; may import report, data, config and common, never the run
or the CLI. wandb itself is imported inside the functions that need it.
"""
