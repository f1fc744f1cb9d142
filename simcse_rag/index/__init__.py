"""Indexes: FAISS dense, BM25 sparse, reciprocal rank fusion and the hybrid retriever."""
