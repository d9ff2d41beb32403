"""Sensors: what requests runs when there is something to replicate."""
