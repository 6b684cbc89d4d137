"""orphan.spawn-dies: raises while importing (C: ctor_dies.so exits 3)."""
raise RuntimeError("raising_import: this module refuses to import")


def actor(actor):
    pass
