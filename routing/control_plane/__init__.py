"""The control plane: what each gateway process knows of keys, limits, budgets and the catalogue, and how it
learns of changes. feed.py records changes (every writer, through the models), loader.py reads the database,
keys.py keeps the keys in use, refresher.py applies the feed in each gateway process."""
