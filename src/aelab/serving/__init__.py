"""New images through the champion: the detector, image reading, `aelab score`, the MLflow
model."""
