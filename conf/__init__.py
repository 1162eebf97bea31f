"""Hydra config tree of dmx, shipped as a package so it is found from any folder."""
