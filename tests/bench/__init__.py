"""Tests of ``tether bench``'s load generator and report (``bench/``)."""
