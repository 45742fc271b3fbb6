"""Face recognition engines: the course's network (network) and weights (weights), the embedders
(embedders) and the default thresholds per model and crop path (thresholds). The course's
``fr_utils`` and the door (``happyhouse.door``) build on these; nothing here imports either."""
