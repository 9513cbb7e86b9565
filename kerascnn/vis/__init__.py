"""Figures: training curves, confusion matrices and the model-interpretation pictures."""
