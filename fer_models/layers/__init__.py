"""Reusable attention layers, one file each (timm's ``layers`` pattern); every layer takes ``channels`` first."""
