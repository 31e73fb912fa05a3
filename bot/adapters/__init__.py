"""Adapters: the outside world (files, git, GitHub, Chronos, SMTP). They never decide."""
