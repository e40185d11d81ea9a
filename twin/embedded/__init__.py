"""What the embedded default starts: the broker and database stack, and the fleet simulator."""
