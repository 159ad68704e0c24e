"""complexity/experiments/segmentation."""
