"""Pure functions on arrays: anomaly scores, clusterers, metrics, intervals, rankings."""
