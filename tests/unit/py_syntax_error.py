def actor(actor):
    return (
