"""The names of the files nerkit writes into a model directory, in one place.

Kept apart from :mod:`nerkit.checkpoint` (which imports torch) so that the search's
light modules (promotion's file filter, the registry behind ``nerkit pull``) can name
them without loading torch.
"""

CONFIG_FILE = "nerkit_config.json"   # the whole resolved training config
METRICS_FILE = "metrics.json"        # the evaluation the weights come from, class weights, versions
STATE_TENSORS = "training_state.safetensors"  # optimizer moments, RNG states (resuming only)
STATE_JSON = "training_state.json"   # step, epoch, scheduler, history (resuming only)
#: Only resuming training needs these: a published model leaves them out.
TRAINING_STATE = (STATE_TENSORS, STATE_JSON)
#: What a registry version adds to a model directory (tune.registry writes them; a pulled
#: model directory holds them).
MANIFEST_FILE = "manifest.json"
CARD_FILE = "MODEL_CARD.md"
