"""Messaging's services: every write and side effect, one function per rule (see each module)."""
