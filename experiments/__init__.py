"""Scripted studies: each is a frozen config model plus a ``run`` function; nothing imports them."""
