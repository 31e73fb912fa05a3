"""The bot's loop: search and gate, report and propose, deploy, recovery, watchdog."""
