"""Drawing helpers shared by the panels and the preferences: measured text wrapping, status boxes."""
