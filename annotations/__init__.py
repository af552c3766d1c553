"""What people say about images: classification labels now; shapes, revisions and formats next."""
