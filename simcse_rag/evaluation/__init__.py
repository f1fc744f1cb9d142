"""Evaluation: STS correlation (``sts``) and retrieval metrics on BEIR-layout data (``retrieval``)."""
