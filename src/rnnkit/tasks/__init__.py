"""One module per task: its model, data adapter, metrics and decoding."""
