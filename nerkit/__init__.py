"""nerkit: weighted/focal-loss fine-tuning of transformer NER (BIO) models.

The library half of the project: data readers and validation, labels, subword
alignment, class weights, losses, the training loop, metrics, checkpoints,
prediction and the data doctor. The distributed search lives in ``tune/``, which
builds on this package; this package never imports it.
"""

__version__ = "0.1.0"
