"""Training networks, and the codes and reconstructions of whole datasets."""
