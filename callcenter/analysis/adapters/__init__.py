"""Alert notifiers: the only code of the analysis domain that talks to the network."""
