"""Pure decisions: no IO, no git, no torch. Clock, seed and data come in as arguments."""
