"""Digits on disk: the sources that produce them and the split into train/val/test."""
