"""What the pipeline reports: evaluate's tables, the summary, the figures, the gate."""
