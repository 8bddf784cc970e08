"""The trader's screens: the terminal dashboard (`genesis ui`) and `genesis run`'s live line."""
