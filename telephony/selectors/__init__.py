"""Telephony reads, by topic."""
