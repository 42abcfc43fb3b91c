"""Figures, tables and documents built from data and run directories."""
