"""Auth service: users, passwords, access/refresh tokens, signing keys."""
