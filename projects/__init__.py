"""Projects, their labels, roles and memberships, and the images uploaded to them."""
