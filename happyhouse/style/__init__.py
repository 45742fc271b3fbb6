"""Neural style transfer controls: colours, style blending, initial image, sizes, checkpoints, progress."""
