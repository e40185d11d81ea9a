"""The stream worker: a Faust app whose agents fold each topic's batches into the twin."""
