"""Image embeddings in pgvector (computed by embedding jobs) and 1vN / NvN similarity search over them."""
