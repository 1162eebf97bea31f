"""dmx: does dynamic masking beat static masking, for my model, my data, my budget?"""

__version__ = "0.1.0"
