"""The migrations, `NNNN_name.sql`, applied in order by `twin.store.migrations`."""
