"""One pretraining run, start to end: the Hydra entry (entry), the assembly from a Config
(train), downstream on a finished run's kept encoder (finished: dmx finetune, dmx eval),
what a folder already holds and how a run continues it (resume), the files written
during training (callbacks), clean stops on a signal (stops), where it ran (provenance), the
allocator setting (allocator), and where a sweep of runs is (sweep_progress).

Layer 3 of 9: below the CLI and bench; may import downstream, tracking and everything under
them. A new step of a run's life (a new callback, a new thing a run folder holds) goes here.
"""
