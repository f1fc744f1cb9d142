"""Evaluation: STS correlation (``sts``) and retrieval metrics on BEIR data (``retrieval``)."""
