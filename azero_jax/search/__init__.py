"""Host-side search: random programs, mutator, initial programs, dead code, FEC, train budget."""
