"""Use cases: one handler per operation, working through ports (store, engines, clock)."""
