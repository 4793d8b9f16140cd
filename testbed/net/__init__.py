"""Network orchestration on Mininet: node classes, daemons, captures, checks, cleanup."""
