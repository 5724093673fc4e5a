"""Stores behind one Protocol; only the module of a store knows its client library."""
