"""`make bench`: Modelgate against the usual ways of serving the same model, on this machine."""
