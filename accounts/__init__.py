"""Users, sign-up and log-in, and the API tokens that scripts use."""
