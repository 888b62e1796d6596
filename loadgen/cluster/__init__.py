"""Scale-out: one load sent from many processes and hosts, on Locust's master/worker runners."""
