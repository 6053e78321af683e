"""Building: running one resolved derivation (:mod:`.sandbox`), sharing the
job budget between concurrent builds (:mod:`.jobserver`), and walking the
graph of derivations (the scheduler)."""
