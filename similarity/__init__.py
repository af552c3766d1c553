"""Image embeddings and 1vN / NvN similarity search on pgvector (the extension is installed now)."""
