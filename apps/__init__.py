"""Applications of condensed datasets, built on the core ``datadam`` library.

Nothing in the core imports from here.
"""
