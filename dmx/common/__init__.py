"""The common layer, the floor of the house: what every other package may use, and which
imports no other dmx package. Errors that become one line (errors), every allowed value of a
setting (choices), a config section as an object (fields), Hydra overrides as plain strings
(overrides), files written atomically (files) and the run folder's layout (run_folder),
progress lines for long preparations (progress), whether a server answers (net), the
device's facts (hardware), per-process sums through a data-parallel checkpoint (shares).

Layer 9 of 9 (the lowest): imports the standard library, torch and rich only.
"""
