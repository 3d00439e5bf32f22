SELECT setseed(%(seed_fraction)s::double precision)
