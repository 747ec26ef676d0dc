"""Reports people can look at: one self-contained HTML file (no JavaScript, no network).

:func:`render_html` returns the page as a string and :func:`write_html` writes it atomically.
The page is built from what is given: the data summary always, then per-annotator tables and
confusion heatmaps for a fitted aggregator and/or model, training curves for a model,
identifiability diagnostics, and accuracy against known truth.
"""

from crowdlearn.report.html import render_html, write_html

__all__ = ["render_html", "write_html"]
