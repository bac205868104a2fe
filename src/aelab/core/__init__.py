"""The small base every layer may use: params, paths, atomic file I/O, the user error."""
