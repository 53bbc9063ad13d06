"""What the add-on does with the backend's replies (scene glue); operators stay thin and call these."""
