"""Plain torch for training, inference and embeddings: no Django here, so it runs and tests alone."""
