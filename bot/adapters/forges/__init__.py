"""Where pull requests live: the Forge protocol, a local git forge and GitHub."""
